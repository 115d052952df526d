// What the storage holds and what the last garbage collection did, for operators: every run (not
// a dry run) records itself in one document, so whichever replica ran it, every replica — and the
// NixeryInstance status the operator writes from `GET /storage-status` — tells the same story.
// The bytes in use are those the last complete run counted: measuring them costs a listing of the
// whole storage, which only a GC run does.
import { TtlCache } from '../cache/ttl-cache.ts';
import type { Logger } from '../log/logger.ts';
import type { StorageBackend } from '../storage/backend.ts';

/** What a garbage collection run reports that the status uses (gc.ts's GcReport has it). */
export interface GcRunFigures {
  dryRun: boolean;
  result: 'ok' | 'incomplete';
  deleted: Record<string, { objects: number; bytes: number }>;
  expired: { retention: number; per_name: number };
  kept: { blobs: { bytes: number }; documents: { bytes: number } };
  durationSeconds: number;
  /** With a storage quota: what the run measured for it (service/quota.ts's QuotaMeasure). */
  quota?: { measure: QuotaFigures };
}

/** service/quota.ts's QuotaMeasure: what a complete run measured for the quota. */
export interface QuotaFigures {
  inUseBytes: number;
  pinnedBytes: number;
  leavingBytes: number;
}

export const GC_LAST_RUN_KEY = 'gc/last-run';

/** The last run, as the status shows it. */
export interface LastGcRun {
  /** ISO 8601, when the run ended. */
  finishedAt: string;
  /** `incomplete`: something could not be read, nothing was deleted. */
  result: GcRunFigures['result'];
  durationSeconds: number;
  /** Blobs, layer cache entries and documents deleted. */
  objectsSwept: number;
  bytesFreed: number;
  /** On-demand images expired by retention or by the per-name limit. */
  imagesExpired: number;
}

/** Bytes stored, as the last complete run counted them. */
export interface StorageUsage {
  /** ISO 8601, when that run ended. */
  measuredAt: string;
  blobBytes: number;
  documentBytes: number;
  totalBytes: number;
}

export interface StorageStatusDocument {
  version: 1;
  lastGc: LastGcRun;
  /** Absent until a run completed. */
  usage?: StorageUsage;
  /**
   * With a storage quota, the last complete run's measure: replicas whose own runs are skipped
   * (another holds the GC lease) take their quota estimate from it.
   */
  quota?: QuotaFigures & { measuredAt: string };
}

/** The document after `report` — pure; an incomplete run keeps the previous usage. */
export function nextStorageStatus(previous: StorageStatusDocument | null, report: GcRunFigures, finishedAt: Date): StorageStatusDocument {
  const kinds = Object.values(report.deleted);
  const lastGc: LastGcRun = {
    finishedAt: finishedAt.toISOString(),
    result: report.result,
    durationSeconds: Math.round(report.durationSeconds * 1000) / 1000,
    objectsSwept: kinds.reduce((n, c) => n + c.objects, 0),
    bytesFreed: kinds.reduce((n, c) => n + c.bytes, 0),
    imagesExpired: report.expired.retention + report.expired.per_name,
  };
  if (report.result !== 'ok') return { version: 1, lastGc, ...(previous?.usage ? { usage: previous.usage } : {}), ...(previous?.quota ? { quota: previous.quota } : {}) };
  const blobBytes = report.kept.blobs.bytes;
  const documentBytes = report.kept.documents.bytes;
  const { inUseBytes, pinnedBytes, leavingBytes } = report.quota?.measure ?? {};
  return {
    version: 1,
    lastGc,
    usage: { measuredAt: lastGc.finishedAt, blobBytes, documentBytes, totalBytes: blobBytes + documentBytes },
    ...(report.quota ? { quota: { measuredAt: lastGc.finishedAt, inUseBytes: inUseBytes!, pinnedBytes: pinnedBytes!, leavingBytes: leavingBytes! } } : {}),
  };
}

/** The document as stored, or null (none yet, or not of this shape). */
export async function readStorageStatusDocument(storage: Pick<StorageBackend, 'getDocument'>): Promise<StorageStatusDocument | null> {
  const doc = await storage.getDocument<unknown>(GC_LAST_RUN_KEY);
  return isStatusDocument(doc) ? doc : null;
}

function isStatusDocument(value: unknown): value is StorageStatusDocument {
  const v = value as StorageStatusDocument | null;
  return v !== null && typeof v === 'object' && v.version === 1 && typeof v.lastGc?.finishedAt === 'string';
}

/** Records a run; a failure to record is logged, never the run's failure. */
export async function recordGcRun(storage: StorageBackend, report: GcRunFigures, finishedAt: Date, log: Logger): Promise<void> {
  if (report.dryRun) return;
  try {
    const previous = await storage.getDocument<unknown>(GC_LAST_RUN_KEY).catch(() => null);
    await storage.putDocument(GC_LAST_RUN_KEY, nextStorageStatus(isStatusDocument(previous) ? previous : null, report, finishedAt));
  } catch (error) {
    log.warn('the garbage collection run could not be recorded for the storage status', { document: GC_LAST_RUN_KEY, error });
  }
}

/** What `GET /storage-status` answers. */
export interface StorageStatusView {
  /** Null until a garbage collection ran on this storage. */
  lastGc: LastGcRun | null;
  usage: StorageUsage | null;
}

/**
 * Reads the document for `GET /storage-status`, at most once per `ttlMs` however often it is
 * asked (the route needs no credential, so it must not turn requests into storage reads).
 */
export class StorageStatus {
  private readonly storage: Pick<StorageBackend, 'getDocument'>;
  private readonly cache: TtlCache<StorageStatusView>;

  constructor(storage: Pick<StorageBackend, 'getDocument'>, options: { ttlMs?: number; now?: () => number } = {}) {
    this.storage = storage;
    // A failed read is not remembered: the next request tries again.
    this.cache = new TtlCache({ ttlMs: options.ttlMs ?? 30_000, maxEntries: 1, ...(options.now ? { now: options.now } : {}) });
  }

  read(): Promise<StorageStatusView> {
    return this.cache.get(GC_LAST_RUN_KEY, async () => {
      const doc = await readStorageStatusDocument(this.storage);
      return doc ? { lastGc: doc.lastGc, usage: doc.usage ?? null } : { lastGc: null, usage: null };
    });
  }
}
