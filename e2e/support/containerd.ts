// A containerd of a test's own, for `ctr` pulls: root, state, sockets and plugin directory in a
// temporary directory, its own configuration (no CRI: only the image store and the snapshotter are
// used). Stopped with `stopContainerd`, which the test's `after` calls.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { eventually, run, spawn, stopChild } from '@nixery/test-support';
import { tempDir } from './registry.ts';

export interface Containerd {
  child: ChildProcess;
  socket: string;
  dir: string;
  output: () => string;
}

export async function startContainerd(): Promise<Containerd> {
  const dir = await tempDir('nixery-e2e-containerd-');
  const socket = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  await fs.writeFile(config, containerdConfig(dir, socket));
  const child = spawn('containerd', ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  try {
    await eventually(
      'containerd to answer on its socket',
      async () => {
        if (child.exitCode !== null) throw new Error(`containerd exited (${child.exitCode}):\n${output.slice(-3000)}`);
        return (await run('ctr', ['--address', socket, 'version'], { timeoutMs: 10_000 })).code === 0 ? true : undefined;
      },
      30_000,
      200,
    );
  } catch (error) {
    await stopChild(child);
    await fs.rm(dir, { recursive: true, force: true });
    throw new Error(`containerd did not start:\n${output.slice(-3000)}`, { cause: error });
  }
  return { child, socket, dir, output: () => output };
}

export async function stopContainerd(containerd: Containerd | undefined): Promise<void> {
  if (!containerd) return;
  await stopChild(containerd.child);
  await fs.rm(containerd.dir, { recursive: true, force: true });
}

/** The configuration of a private containerd kept under `dir` (no CRI: the image store and snapshotter only). */
export function containerdConfig(dir: string, socket: string): string {
  return [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]',
    '[grpc]',
    `  address = "${socket}"`,
    '[ttrpc]',
    `  address = "${socket}.ttrpc"`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${dir}/opt"`,
    '',
  ].join('\n');
}
