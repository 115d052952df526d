// A private containerd for the bench (image store and snapshotter only, no CRI), in a directory
// of its own, so every measurement starts from an empty content store and no snapshots.
//
// The directory is a tmpfs of its own: on the disk, each pull's ~500 MB of content and unpacked
// files were still being written back during the next pull, so a run's first pull took 4.8 s and
// the later ones 10–12 s whichever server they pulled from (2026-12-08); the figures compare the
// servers, not the disk's backlog. Both sides of every figure pull into the same kind of tmpfs.
import fs from 'node:fs';
import path from 'node:path';
import { containerdConfig } from '../../support/containerd.ts';
import { mkdirp, run, runOk, startDaemon, type Daemon } from './exec.ts';

/** Room for the bench image's content and unpacked snapshots (about 0.5 GB), with margin. */
const TMPFS_SIZE = '4g';

export interface BenchContainerd {
  daemon: Daemon;
  socket: string;
  /** `ctr --address <socket> ...args`, failing on a non-zero exit; its wall time in `ms`. */
  ctr(args: string[], timeoutMs?: number): Promise<{ ms: number; stdout: string }>;
  /** Stops it and removes its directory (content, snapshots, state). */
  stop(): Promise<void>;
}

export async function startBenchContainerd(dir: string): Promise<BenchContainerd> {
  mkdirp(dir);
  await runOk('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0700`, 'tmpfs', dir], { timeoutMs: 30_000 });
  let daemon: Daemon;
  try {
    daemon = await startIn(dir);
  } catch (err) {
    await unmount(dir);
    throw err;
  }
  return withDaemon(dir, daemon);
}

async function startIn(dir: string): Promise<Daemon> {
  const socket = socketIn(dir);
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(config, containerdConfig(dir, socket));
  return startDaemon('containerd', 'containerd', ['--config', config], {
    logFile: path.join(dir, 'containerd.log'),
    ready: async () => (await run('ctr', ['--address', socket, 'version'], { timeoutMs: 10_000 })).code === 0,
    timeoutMs: 30_000,
  });
}

const socketIn = (dir: string) => path.join(dir, 'containerd.sock');

/** Unmounts the tmpfs (and any snapshot mount left under it) and removes the directory. */
async function unmount(dir: string): Promise<void> {
  await runOk('umount', ['--recursive', dir], { timeoutMs: 60_000 });
  fs.rmSync(dir, { recursive: true, force: true });
}

function withDaemon(dir: string, daemon: Daemon): BenchContainerd {
  const socket = socketIn(dir);
  return {
    daemon,
    socket,
    async ctr(args, timeoutMs = 600_000) {
      const ran = await run('ctr', ['--address', socket, ...args], { timeoutMs });
      if (ran.code !== 0) throw new Error(`ctr ${args.join(' ')} exited with ${ran.code ?? ran.signal}:\n${ran.stderr.slice(-3000)}\n${daemon.logTail()}`);
      return { ms: ran.ms, stdout: ran.stdout };
    },
    async stop() {
      await daemon.stop();
      await unmount(dir);
    },
  };
}
