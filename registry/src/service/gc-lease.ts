// Garbage collection runs on one replica at a time: a run holds the `gc` lease in the shared
// storage (storage/lease.ts), renewed while it lasts. The periodic run skips a turn when another
// replica holds it; `nixery gc` waits for it a bounded time (a run of a replica that died is taken
// over once its lease expires), then gives up with GcLeaseBusyError.
import { setTimeout as sleep } from 'node:timers/promises';
import { isHeld, type HeldLease, type Leases } from '../storage/lease.ts';

export const GC_LEASE = 'gc';

/** Exit code of `nixery gc` when another replica kept collecting: EX_TEMPFAIL, "try again later". */
export const GC_BUSY_EXIT_CODE = 75;

export class GcLeaseBusyError extends Error {
  readonly code = 'GC_LEASE_BUSY';
  readonly holder: string;
  readonly expiresMs: number;
  constructor(holder: string, expiresMs: number, waitedMs: number) {
    super(
      `another replica (${holder}) is collecting garbage on this storage and still was after ${Math.round(waitedMs / 1000)} s ` +
        `(its lease runs until ${new Date(expiresMs).toISOString()} unless renewed); try again later`,
    );
    this.name = 'GcLeaseBusyError';
    this.holder = holder;
    this.expiresMs = expiresMs;
  }
}

/** The GC lease, waiting up to `waitMs` for another replica's run (or its lease's expiry). */
export async function acquireGcLease(leases: Leases, options: { waitMs: number; pollMs?: number }): Promise<HeldLease> {
  const started = performance.now();
  for (;;) {
    const lease = await leases.tryAcquire(GC_LEASE);
    if (isHeld(lease)) return lease;
    const waited = performance.now() - started;
    if (waited >= options.waitMs) throw new GcLeaseBusyError(lease.holder, lease.expiresMs, waited);
    await sleep(Math.min(options.pollMs ?? 1000, options.waitMs - waited));
  }
}
