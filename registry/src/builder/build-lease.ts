// One build per image across replicas sharing a storage. Before a cold build, the builder takes
// the image's build lease (storage/lease.ts). When another replica holds it, this one waits for
// the manifest cache entry that replica writes before it lets the lease go, polling storage; it
// builds itself only once the lease is released without the entry (the holder failed), expires
// (the holder died: a takeover), or the wait runs out. Inside one process the builder's job
// queue already makes one build per image; this is on top of it.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log/logger.ts';
import { isHeld, type HeldLease, type Leases } from '../storage/lease.ts';

/** How often a waiting replica looks for the holder's result. */
export const DEFAULT_LEASE_POLL_MS = 500;

export interface BuildTurnOptions<T> {
  leases: Leases;
  /** The lease's name: one per manifest cache key. */
  name: string;
  /** The image from the manifest cache, once the holder wrote it. */
  cached: () => Promise<T | null>;
  pollMs: number;
  /** The longest wait for other replicas, after which this one builds anyway (a duplicate build, not a failure). */
  maxWaitMs: number;
  log: Logger;
  /** Told how a wait for another replica ended. */
  onWait?: (result: 'served' | 'built_here') => void;
  /** Ends a wait for another replica (the job's callers all left): rejects with its reason. */
  signal?: AbortSignal;
  /** Tests: the clock of maxWaitMs. */
  now?: () => number;
}

/** Either the image (another replica built it) or the go-ahead to build, with the lease when one was taken. */
export type BuildTurn<T> = { result: T } | { lease: HeldLease | undefined };

export async function buildTurn<T>(options: BuildTurnOptions<T>): Promise<BuildTurn<T>> {
  const { leases, name, cached, log, onWait } = options;
  const now = options.now ?? (() => performance.now());
  const deadline = now() + options.maxWaitMs;
  let waited = false;
  for (;;) {
    const lease = await leases.tryAcquire(name);
    if (isHeld(lease)) {
      // The holder may have written the image and released the lease since the caller's cache miss.
      const result = await cached().catch(async (error: unknown) => {
        await lease.release();
        throw error;
      });
      if (result) {
        await lease.release();
        if (waited) onWait?.('served');
        return { result };
      }
      if (waited) onWait?.('built_here');
      return { lease };
    }
    if (!waited) log.info('another replica is building this image: waiting for its result', { lease: name, holder: lease.holder, expiresMs: lease.expiresMs });
    waited = true;
    for (;;) {
      await sleep(options.pollMs, undefined, options.signal ? { signal: options.signal } : {}).catch((error: unknown) => {
        throw options.signal?.aborted ? options.signal.reason : error;
      });
      const result = await cached();
      if (result) {
        onWait?.('served');
        return { result };
      }
      if (now() >= deadline) {
        log.warn('waited too long for another replica to build this image: building it here too', { lease: name, waitedMs: options.maxWaitMs });
        onWait?.('built_here');
        return { lease: undefined };
      }
      // Released without the image, or expired: try to take it.
      if ((await leases.peek(name)).status !== 'held') break;
    }
  }
}
