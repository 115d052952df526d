// The registry as a real process (`nixery serve` from the built bin), on a free port.
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { exited, spawn, waitForOutput } from './process.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const NIXERY_BIN = path.join(REPO_ROOT, 'registry/bin/nixery.js');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface RegistryProcess {
  url: string;
  host: string;
  port: number;
  storagePath: string;
  child: ChildProcess;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startRegistry(options: { env?: Record<string, string>; storagePath?: string; port?: number } = {}): Promise<RegistryProcess> {
  const port = options.port ?? (await freePort());
  const storagePath = options.storagePath ?? (await tempDir('nixery-e2e-storage-'));
  const child = spawn(process.execPath, [NIXERY_BIN, 'serve', '--host', '127.0.0.1'], {
    env: { ...process.env, PORT: String(port), STORAGE_PATH: storagePath, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  await waitForOutput(child, /nixery is listening/, 30_000);
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    storagePath,
    child,
    logs: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited(child);
    },
  };
}
