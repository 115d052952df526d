// The registry as a real process (`nixery serve` from the built bin), on a free port.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort, REPO_ROOT, spawn, stopChild, waitForOutput } from '@nixery/test-support';

export const NIXERY_BIN = path.join(REPO_ROOT, 'registry/bin/nixery.js');

export async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface RegistryProcess {
  /** `https://…` when the registry was given a certificate (NIXERY_TLS_CERT_FILE), else `http://…`. */
  url: string;
  host: string;
  port: number;
  storagePath: string;
  child: ChildProcess;
  logs(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartRegistryOptions {
  env?: Record<string, string>;
  storagePath?: string;
  port?: number;
  /**
   * A command the registry runs under, its own command line appended (e.g. `unshare` with a shell
   * that sets up mounts and execs it). It must exec the registry, so the process stays the registry.
   */
  prefix?: string[];
}

export async function startRegistry(options: StartRegistryOptions = {}): Promise<RegistryProcess> {
  const port = options.port ?? (await freePort());
  const storagePath = options.storagePath ?? (await tempDir('nixery-e2e-storage-'));
  const [command, ...args] = [...(options.prefix ?? []), process.execPath, NIXERY_BIN, 'serve', '--host', '127.0.0.1'];
  const child = spawn(command!, args, {
    env: { ...process.env, PORT: String(port), STORAGE_PATH: storagePath, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  try {
    await waitForOutput(child, /nixery is listening/, 30_000);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return {
    url: `${options.env?.NIXERY_TLS_CERT_FILE ? 'https' : 'http'}://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    storagePath,
    child,
    logs: () => output,
    stop: (signal = 'SIGTERM') => stopChild(child, signal),
  };
}
