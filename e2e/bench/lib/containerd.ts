// A private containerd for the bench (image store and snapshotter only, no CRI), in a directory
// of its own, so every measurement starts from an empty content store and no snapshots.
import fs from 'node:fs';
import path from 'node:path';
import { containerdConfig } from '../../support/containerd.ts';
import { mkdirp, run, startDaemon, type Daemon } from './exec.ts';

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
  const socket = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(config, containerdConfig(dir, socket));
  const daemon = await startDaemon('containerd', 'containerd', ['--config', config], {
    logFile: path.join(dir, 'containerd.log'),
    ready: async () => (await run('ctr', ['--address', socket, 'version'], { timeoutMs: 10_000 })).code === 0,
    timeoutMs: 30_000,
  });
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
      // Snapshots may be left mounted by nothing (ctr unpack mounts only while applying); remove all.
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
