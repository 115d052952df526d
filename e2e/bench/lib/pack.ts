// Packing by the registry's pipeline in a process of its own (pack-worker.ts), and the tar
// options the baselines archive the same paths with (deterministic, as ours).
import { MB, PACK_WORKER } from './context.ts';
import { runOk } from './exec.ts';
import { median } from './figures.ts';
import type { PackJob, PackReport } from '../pack-worker.ts';

export const TAR = 'tar -c --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0';

export async function packWorker(job: PackJob, nodeArgs: string[] = []): Promise<PackReport> {
  const ran = await runOk(process.execPath, [...nodeArgs, PACK_WORKER, JSON.stringify(job)], { timeoutMs: 900_000 });
  return JSON.parse(ran.stdout.trim().split('\n').pop()!) as PackReport;
}

/** A throughput figure's values in MB/s from the milliseconds each side took for `bytes`: medians and every sample. */
export function throughputs(bytes: number, ours: number[], baseline: number[]): { ours: number; baseline: number; samples: { ours: number[]; baseline: number[] } } {
  const rate = (ms: number) => bytes / MB / (ms / 1000);
  return { ours: rate(median(ours)), baseline: rate(median(baseline)), samples: { ours: ours.map(rate), baseline: baseline.map(rate) } };
}
