// Collection of the registry's Nix store (issue #21), so the pod's disk stays bounded: every
// NIXERY_NIX_GC_INTERVAL seconds the server runs `nix-store --gc --max-freed N`
// (NIXERY_NIX_GC_MAX_FREED), stopped after NIX_TIMEOUT like every Nix call. What it keeps: the
// roots of builds in flight (nix/gc-roots.ts) and whatever else roots the store (profiles, the
// image's own closure). What it may delete: every other path — finished builds' closures (the
// images are in the storage, and the layer cache needs no store path), the package source copied
// in by evaluations, the product's own Nix expressions: Nix rebuilds or copies them again on demand.
// A collection runs alone (StoreGate): evaluations waiting to root their derivations wait for it,
// and the derivations builds remembered (builder resolutions) are forgotten first, since the
// collection may delete them.
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { PeriodicRun } from '../service/periodic.ts';
import { NixTimeoutError } from './errors.ts';
import { run } from './run.ts';
import type { StoreGate } from './store-gate.ts';

export interface NixStoreGcReport {
  result: 'ok' | 'error';
  deletedPaths: number;
  freedBytes: number;
  maxFreedBytes: number;
  durationSeconds: number;
  /** Why it failed (a timeout, Nix's exit status). */
  error?: string;
}

const UNITS: Record<string, number> = { bytes: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** Nix's summary line, `N store paths deleted, X MiB freed`; undefined when absent. */
export function parseGcSummary(stderr: string): { deletedPaths: number; freedBytes: number } | undefined {
  const m = /(\d+) store paths? deleted, ([\d.]+) (bytes|KiB|MiB|GiB|TiB) freed/.exec(stderr);
  return m ? { deletedPaths: Number(m[1]), freedBytes: Math.round(Number(m[2]) * UNITS[m[3]!]!) } : undefined;
}

export interface NixStoreCollectorOptions {
  gate: StoreGate;
  timeoutSeconds: number;
  maxFreedBytes: number;
  log: Logger;
  /** Called inside the exclusive section, before Nix collects: forget what the collection may delete. */
  beforeCollect?: () => void;
  /** Extra `--option NAME VALUE` pairs, as for builds. */
  nixOptions?: Record<string, string>;
}

export class NixStoreCollector {
  private readonly options: NixStoreCollectorOptions;

  constructor(options: NixStoreCollectorOptions) {
    this.options = options;
  }

  /** One bounded collection; never rejects (a failure is the report's `error`). */
  collect(): Promise<NixStoreGcReport> {
    const { gate, timeoutSeconds, maxFreedBytes, log, beforeCollect } = this.options;
    return gate.exclusive(async () => {
      const started = performance.now();
      const report = (fields: Partial<NixStoreGcReport>): NixStoreGcReport => ({
        result: 'ok',
        deletedPaths: 0,
        freedBytes: 0,
        maxFreedBytes,
        durationSeconds: (performance.now() - started) / 1000,
        ...fields,
      });
      try {
        beforeCollect?.();
        // Nix names every path it deletes: keep only its summary line (stdout or stderr, by version).
        let summaryLine = '';
        const options = Object.entries(this.options.nixOptions ?? {}).flatMap(([name, value]) => ['--option', name, value]);
        const result = await run('nix-store', ['--gc', '--max-freed', String(maxFreedBytes), ...options], {
          phase: 'collect',
          deadline: performance.now() + timeoutSeconds * 1000,
          timeoutSeconds,
          log,
          onStderrLine: (line) => {
            if (parseGcSummary(line)) summaryLine = line;
          },
        });
        const summary = parseGcSummary(summaryLine) ?? parseGcSummary(result.stdout) ?? { deletedPaths: 0, freedBytes: 0 };
        if (result.exitCode !== 0) return report({ ...summary, result: 'error', error: `nix-store --gc exited with ${result.exitCode ?? result.signal}: ${result.logTail.trim().split('\n').at(-1) ?? ''}` });
        return report(summary);
      } catch (error) {
        return report({ result: 'error', error: error instanceof NixTimeoutError ? `stopped after NIX_TIMEOUT (${timeoutSeconds} s)` : (error as Error).message });
      }
    });
  }
}

/** The collection every `intervalMs` in the server, counted and logged. */
export class PeriodicNixStoreGc extends PeriodicRun<NixStoreGcReport> {
  private readonly collector: Pick<NixStoreCollector, 'collect'>;
  private readonly metrics: Pick<Metrics, 'nixStoreGcRuns' | 'nixStoreGcFreedBytes'>;
  private readonly log: Logger;

  constructor(options: { collector: Pick<NixStoreCollector, 'collect'>; metrics: Pick<Metrics, 'nixStoreGcRuns' | 'nixStoreGcFreedBytes'>; log: Logger; intervalMs: number }) {
    if (!(options.intervalMs > 0)) throw new RangeError('the Nix store collection interval must be positive');
    super(options.intervalMs);
    this.collector = options.collector;
    this.metrics = options.metrics;
    this.log = options.log;
  }

  protected async runOnce(): Promise<NixStoreGcReport> {
    const report = await this.collector.collect();
    this.metrics.nixStoreGcRuns.inc({ result: report.result });
    this.metrics.nixStoreGcFreedBytes.inc(report.freedBytes);
    (report.result === 'ok' ? this.log.info : this.log.warn).call(this.log, 'nix store collection', { ...report });
    return report;
  }
}
