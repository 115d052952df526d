// The purge of abandoned temporary data while the registry runs: upload sessions no request on any
// replica used for longer than NIXERY_UPLOAD_SESSION_TTL (push/uploads.ts, in the shared storage;
// never one with a request in flight here)
// and staging objects older than NIXERY_STAGING_TTL (the backend's sweepStaging, never one this
// process is writing). It runs every quarter of the shorter limit, within 30 s and 10 min, on an
// unref'd timer that the next run is set on only once a run ended, so runs never overlap; it stops
// with the server. A run that removed something logs one line; every run is counted.
import type { Logger } from '../log/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Uploads } from '../push/uploads.ts';
import type { StorageBackend } from '../storage/backend.ts';
import { PeriodicRun } from './periodic.ts';

export const MIN_PURGE_INTERVAL_MS = 30_000;
export const MAX_PURGE_INTERVAL_MS = 10 * 60_000;

/** A quarter of the shorter limit, so nothing outlives its limit by more than a quarter; clamped to 30 s – 10 min. */
export function purgeIntervalMs(uploadSessionTtlMs: number, stagingTtlMs: number): number {
  return Math.min(MAX_PURGE_INTERVAL_MS, Math.max(MIN_PURGE_INTERVAL_MS, Math.floor(Math.min(uploadSessionTtlMs, stagingTtlMs) / 4)));
}

export interface PurgeOptions {
  uploads: Pick<Uploads, 'purgeIdle'>;
  storage: Pick<StorageBackend, 'sweepStaging'>;
  metrics: Pick<Metrics, 'purgeRuns' | 'purgeDuration' | 'purgedObjects' | 'purgedBytes'>;
  log: Logger;
  uploadSessionTtlMs: number;
  stagingTtlMs: number;
  /** Default: purgeIntervalMs of the two limits. */
  intervalMs?: number;
}

/** What one run removed; `errors` names the parts that failed (the rest still ran). */
export interface PurgeResult {
  uploadSessions: number;
  uploadBytes: number;
  stagingObjects: number;
  stagingBytes: number;
  errors: ('upload_session' | 'staging')[];
}

export class Purger extends PeriodicRun<PurgeResult> {
  private readonly options: PurgeOptions;

  constructor(options: PurgeOptions) {
    super(options.intervalMs ?? purgeIntervalMs(options.uploadSessionTtlMs, options.stagingTtlMs));
    this.options = options;
  }

  protected async runOnce(): Promise<PurgeResult> {
    const { uploads, storage, metrics, log, uploadSessionTtlMs } = this.options;
    const started = process.hrtime.bigint();
    const result: PurgeResult = { uploadSessions: 0, uploadBytes: 0, stagingObjects: 0, stagingBytes: 0, errors: [] };
    try {
      const purged = await uploads.purgeIdle(uploadSessionTtlMs);
      result.uploadSessions = purged.sessions;
      result.uploadBytes = purged.bytes;
    } catch (error) {
      result.errors.push('upload_session');
      log.warn('purging idle upload sessions failed', { error });
    }
    try {
      const swept = await storage.sweepStaging();
      result.stagingObjects = swept.objects;
      result.stagingBytes = swept.bytes;
    } catch (error) {
      result.errors.push('staging');
      log.warn('sweeping stale staging objects failed', { error });
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.purgeRuns.inc({ result: result.errors.length > 0 ? 'error' : 'ok' });
    metrics.purgeDuration.observe(seconds);
    metrics.purgedObjects.inc({ kind: 'upload_session' }, result.uploadSessions);
    metrics.purgedBytes.inc({ kind: 'upload_session' }, result.uploadBytes);
    metrics.purgedObjects.inc({ kind: 'staging' }, result.stagingObjects);
    metrics.purgedBytes.inc({ kind: 'staging' }, result.stagingBytes);
    if (result.uploadSessions > 0 || result.stagingObjects > 0) {
      log.info('purged abandoned upload sessions and staging objects', {
        uploadSessions: result.uploadSessions,
        uploadBytes: result.uploadBytes,
        stagingObjects: result.stagingObjects,
        stagingBytes: result.stagingBytes,
        durationSeconds: seconds,
      });
    }
    return result;
  }
}
