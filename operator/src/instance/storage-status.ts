// The registry's storage as the instance status shows it: the registry answers GET /storage-status
// (registry/src/service/storage-status.ts) from the record its last garbage collection left in
// storage, so any replica behind the Service tells the same. Pure mapping, and one bounded request.
import { exchange, type StorageStatusView } from '@nixery/registry/operator-api';
import type { InstanceStorageStatus } from '../api/types.ts';

/** What the registry says at `target` (its /storage-status URL); undefined when it could not be read. */
export type StorageStatusReader = (target: { url: string; ca?: string; servername?: string }) => Promise<unknown>;

/** GET /storage-status, bounded to 3 s and 64 KiB; undefined on any failure (the status keeps what it had). */
export const readStorageStatus: StorageStatusReader = async ({ url, ca, servername }) => {
  try {
    const answer = await exchange('GET', url, { Accept: 'application/json' }, { signal: AbortSignal.timeout(3000), ...(ca ? { ca } : {}), ...(servername ? { servername } : {}) });
    return answer.status === 200 ? (JSON.parse(answer.body) as unknown) : undefined;
  } catch {
    return undefined;
  }
};

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const time = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

/** The status's `storage` from the registry's answer; undefined for anything not of that shape. */
export function instanceStorageStatus(answer: unknown): InstanceStorageStatus | undefined {
  if (answer === null || typeof answer !== 'object') return undefined;
  const { lastGc, usage } = answer as Partial<Record<keyof StorageStatusView, unknown>>;
  const status: InstanceStorageStatus = {};
  const u = usage as Partial<Record<string, unknown>> | null | undefined;
  if (u && count(u.totalBytes) && time(u.measuredAt)) {
    status.usedBytes = u.totalBytes;
    status.measuredAt = new Date(u.measuredAt).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
  const g = lastGc as Partial<Record<string, unknown>> | null | undefined;
  if (g && time(g.finishedAt) && (g.result === 'ok' || g.result === 'incomplete') && count(g.objectsSwept) && count(g.bytesFreed) && count(g.imagesExpired)) {
    status.lastGarbageCollection = {
      finishedAt: new Date(g.finishedAt).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      result: g.result === 'ok' ? 'Completed' : 'Incomplete',
      objectsSwept: g.objectsSwept,
      bytesFreed: g.bytesFreed,
      imagesExpired: g.imagesExpired,
    };
  }
  return status;
}
