// Leases in the shared storage: which replica builds an image, which one collects garbage. A
// lease is a record (holder, expiry) that changes only by the storage's compare-and-swap
// (StorageBackend.swapLease), so two replicas never both acquire it. The holder renews it every
// third of its duration; a holder that dies stops renewing and the lease expires, and the next
// replica that asks takes it over by a swap from the expired version (one of many concurrent
// takers wins). A holder counts the lease as its own only until the expiry it last wrote, so it
// stops believing in it no later than another replica may take it over (assuming the replicas'
// clocks agree to well within a duration).
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../log/logger.ts';
import type { LeaseRecord, StorageBackend, StoredLease } from './backend.ts';

/** Sixty seconds: a dead replica's build or GC is taken over within about a minute. */
export const DEFAULT_LEASE_DURATION_MS = 60_000;

export type LeaseEvent = 'acquired' | 'taken_over' | 'busy' | 'lost';

export interface LeasesOptions {
  storage: Pick<StorageBackend, 'readLease' | 'swapLease'>;
  durationMs?: number;
  /** This process's name in lease records (default: host, pid and a random suffix). */
  holder?: string;
  log: Logger;
  /** Tests: a fake clock. */
  now?: () => number;
  /** Told of each acquisition, takeover, lease found held by another, and lease lost (metrics). */
  onEvent?: (event: LeaseEvent, name: string) => void;
}

/** What the stored lease means for a replica that wants it: pure, for the clock given. */
export function leaseStatus(stored: StoredLease | null, nowMs: number): 'free' | 'expired' | 'held' {
  if (!stored || stored.record === null) return 'free';
  return stored.record.expiresMs <= nowMs ? 'expired' : 'held';
}

/** Another replica holds the lease. */
export interface LeaseBusy {
  holder: string;
  expiresMs: number;
}

export class LeaseLostError extends Error {
  readonly code = 'LEASE_LOST';
  readonly lease: string;
  constructor(lease: string, why: string) {
    super(`lost the lease ${lease}: ${why}`);
    this.name = 'LeaseLostError';
    this.lease = lease;
  }
}

export class Leases {
  readonly holder: string;
  readonly durationMs: number;
  private readonly options: LeasesOptions;
  private readonly now: () => number;

  constructor(options: LeasesOptions) {
    this.options = options;
    this.durationMs = options.durationMs ?? DEFAULT_LEASE_DURATION_MS;
    if (!(this.durationMs >= 30)) throw new RangeError(`a lease must last at least 30 ms, not ${this.durationMs}`);
    this.holder = options.holder ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.now = options.now ?? Date.now;
  }

  /** The lease as stored (who holds it until when), for waiters. */
  async peek(name: string): Promise<{ status: 'free' | 'expired' | 'held'; record: LeaseRecord | null }> {
    const stored = await this.options.storage.readLease(name);
    return { status: leaseStatus(stored, this.now()), record: stored?.record ?? null };
  }

  /**
   * Acquires the lease when it is free or expired (a takeover); when another holds it, or won
   * the race for it, answers who. The lease is renewed until release(); see HeldLease.
   */
  async tryAcquire(name: string): Promise<HeldLease | LeaseBusy> {
    const { storage, log, onEvent } = this.options;
    const stored = await storage.readLease(name);
    const status = leaseStatus(stored, this.now());
    if (status === 'held') {
      onEvent?.('busy', name);
      return { holder: stored!.record!.holder, expiresMs: stored!.record!.expiresMs };
    }
    const record = { holder: this.holder, expiresMs: this.now() + this.durationMs };
    const version = await storage.swapLease(name, stored?.version ?? null, record);
    if (version === null) {
      onEvent?.('busy', name);
      const now = await storage.readLease(name);
      return { holder: now?.record?.holder ?? '(released meanwhile)', expiresMs: now?.record?.expiresMs ?? 0 };
    }
    if (status === 'expired') {
      onEvent?.('taken_over', name);
      log.warn('took over an expired lease: its holder stopped renewing it', { lease: name, previousHolder: stored!.record!.holder, expiredMs: stored!.record!.expiresMs });
    } else {
      onEvent?.('acquired', name);
    }
    return new HeldLease(name, this.holder, version, record.expiresMs, this.options, this.durationMs, this.now);
  }
}

/** True for what tryAcquire returns when the lease is ours. */
export function isHeld(lease: HeldLease | LeaseBusy): lease is HeldLease {
  return lease instanceof HeldLease;
}

/**
 * A lease this process holds: renewed every third of its duration until release(). `signal`
 * aborts (with LeaseLostError) once the lease is no longer ours — another replica took it over
 * after renewals failed past its expiry — so long work can stop.
 */
export class HeldLease {
  readonly name: string;
  readonly holder: string;
  private version: string;
  private expiresMs: number;
  private readonly options: LeasesOptions;
  private readonly durationMs: number;
  private readonly now: () => number;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  /** Fires at the expiry last written: a renewal still hanging then does not keep the lease ours. */
  private expiryTimer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private released = false;

  constructor(name: string, holder: string, version: string, expiresMs: number, options: LeasesOptions, durationMs: number, now: () => number) {
    this.name = name;
    this.holder = holder;
    this.version = version;
    this.expiresMs = expiresMs;
    this.options = options;
    this.durationMs = durationMs;
    this.now = now;
    this.timer = setInterval(() => void this.renew(), Math.max(10, Math.floor(durationMs / 3)));
    this.timer.unref();
    this.armExpiry();
  }

  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(() => {
      if (!this.released && this.now() >= this.expiresMs) this.lose('it was not renewed before it expired');
    }, Math.max(0, this.expiresMs - this.now()));
    this.expiryTimer.unref();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** One renewal now (the heartbeat calls this); resolves true while the lease is still ours. */
  async renew(): Promise<boolean> {
    this.renewing ??= this.renewOnce().finally(() => (this.renewing = undefined));
    await this.renewing;
    return !this.signal.aborted && !this.released;
  }

  private async renewOnce(): Promise<void> {
    if (this.released || this.signal.aborted) return;
    if (this.now() >= this.expiresMs) return this.lose('it expired before it could be renewed');
    const record = { holder: this.holder, expiresMs: this.now() + this.durationMs };
    try {
      const version = await this.options.storage.swapLease(this.name, this.version, record);
      if (version === null) return this.lose('another replica changed it');
      this.version = version;
      this.expiresMs = record.expiresMs;
      this.armExpiry();
    } catch (error) {
      // Transient: the next beat tries again; the lease is lost only once its expiry passes.
      this.options.log.warn('could not renew a lease', { lease: this.name, expiresMs: this.expiresMs, error });
    }
  }

  /** Gives the lease back, if it is still ours; stops the heartbeat. Never rejects. */
  async release(): Promise<void> {
    if (this.released) return;
    await this.renewing;
    this.released = true;
    clearInterval(this.timer);
    clearTimeout(this.expiryTimer);
    if (this.signal.aborted) return;
    try {
      await this.options.storage.swapLease(this.name, this.version, null);
    } catch (error) {
      // It expires on its own.
      this.options.log.warn('could not release a lease; it expires on its own', { lease: this.name, expiresMs: this.expiresMs, error });
    }
  }

  private lose(why: string): void {
    if (this.signal.aborted) return;
    clearInterval(this.timer);
    clearTimeout(this.expiryTimer);
    this.options.onEvent?.('lost', this.name);
    this.options.log.warn('lost a lease', { lease: this.name, why });
    this.controller.abort(new LeaseLostError(this.name, why));
  }
}
