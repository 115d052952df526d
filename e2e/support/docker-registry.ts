// Debian's docker-registry (the CNCF distribution registry) as a real process: filesystem
// storage in a temporary directory, no authentication, on a free loopback port. The benchmarks
// (e2e/bench/lib/servers.ts) run it with the same configuration.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort, spawn, stopChild } from '@nixery/test-support';
import { tempDir } from './registry.ts';

export interface DockerRegistryProcess {
  host: string;
  url: string;
  dir: string;
  logs(): string;
  stop(): Promise<void>;
}

/** config.yml of a registry storing under `rootDirectory`, listening on loopback at `port`. */
export function dockerRegistryConfig(rootDirectory: string, port: number): string {
  return [
    'version: 0.1',
    'log:',
    '  level: info',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${rootDirectory}`,
    '  cache:',
    '    blobdescriptor: inmemory',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n');
}

export async function startDockerRegistry(): Promise<DockerRegistryProcess> {
  const dir = await tempDir('nixery-e2e-docker-registry-');
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  await fs.writeFile(config, dockerRegistryConfig(path.join(dir, 'data'), port));
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-64_000)));
  child.stderr!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-64_000)));
  const url = `http://127.0.0.1:${port}`;
  const registry: DockerRegistryProcess = {
    host: `127.0.0.1:${port}`,
    url,
    dir,
    logs: () => output,
    async stop() {
      await stopChild(child);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await untilReady(child, url, () => output);
  } catch (error) {
    await registry.stop();
    throw error;
  }
  return registry;
}

/** Polls GET /v2/ (200 once it serves) and fails early when the process cannot start or exits. */
async function untilReady(child: ChildProcess, url: string, logs: () => string): Promise<void> {
  let spawnError: Error | undefined;
  child.once('error', (error) => {
    spawnError = (error as NodeJS.ErrnoException).code === 'ENOENT' ? new Error('docker-registry is not installed; scripts/setup.sh installs it (see README)') : error;
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (spawnError) throw spawnError;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}) before serving:\n${logs()}`);
    try {
      const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) });
      await response.body?.cancel();
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry did not answer GET /v2/ within 30 s:\n${logs()}`);
}
