// Packing by the registry's pipeline in a process of its own (pack-worker.ts), and the tar
// options the baselines archive the same paths with (deterministic, as ours).
import { PACK_WORKER } from './context.ts';
import { runOk } from './exec.ts';
import type { PackJob, PackReport } from '../pack-worker.ts';

export const TAR = 'tar -c --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0';

export async function packWorker(job: PackJob, nodeArgs: string[] = []): Promise<PackReport> {
  const ran = await runOk(process.execPath, [...nodeArgs, PACK_WORKER, JSON.stringify(job)], { timeoutMs: 900_000 });
  return JSON.parse(ran.stdout.trim().split('\n').pop()!) as PackReport;
}
