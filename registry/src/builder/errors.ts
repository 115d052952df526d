// The builder's own failure; how every failure is reported is builder/outcome.ts.

/** A storage write or read failed while building; distinct from a Nix failure. */
export class BuildStorageError extends Error {
  readonly code = 'STORAGE_FAILURE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BuildStorageError';
  }
}

/** Why the builder refused to start a build now; the same request may succeed later. */
export type RejectionReason = 'queue_full' | 'rate_limited';

/** A build the builder would not start now (429 with Retry-After); nothing ran for it. */
export class BuildRejectedError extends Error {
  readonly reason: RejectionReason;
  /** When a retry may succeed, in whole seconds. */
  readonly retryAfterSeconds: number;
  constructor(reason: RejectionReason, message: string, retryAfterSeconds: number) {
    super(message);
    this.name = 'BuildRejectedError';
    this.reason = reason;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Every build slot is taken and the queue holds its most (NIXERY_MAX_QUEUED_BUILDS). */
export class BuildQueueFullError extends BuildRejectedError {
  readonly maxQueued: number;
  constructor(maxQueued: number, retryAfterSeconds: number) {
    const waiting = maxQueued === 1 ? '1 build is' : `${maxQueued} builds are`;
    super('queue_full', `the registry is busy: every build slot is taken and ${waiting} waiting, the most it queues`, retryAfterSeconds);
    this.name = 'BuildQueueFullError';
    this.maxQueued = maxQueued;
  }
}

/** One client started more builds in the last minute than it may (NIXERY_CLIENT_BUILDS_PER_MINUTE). */
export class ClientRateLimitedError extends BuildRejectedError {
  readonly client: string;
  readonly perMinute: number;
  constructor(client: string, perMinute: number, retryAfterSeconds: number) {
    super(
      'rate_limited',
      `too many new images requested from ${client}: this registry starts at most ${perMinute} builds a minute per client address`,
      retryAfterSeconds,
    );
    this.name = 'ClientRateLimitedError';
    this.client = client;
    this.perMinute = perMinute;
  }
}

/** The image's runtime closure is larger than an on-demand build may be (NIXERY_MAX_CLOSURE_SIZE); nothing was packed. */
export class ClosureTooLargeError extends Error {
  readonly code = 'CLOSURE_TOO_LARGE';
  /** The sum of the closure's NAR sizes, as `nix path-info` reports them. */
  readonly closureBytes: number;
  readonly maxClosureBytes: number;
  constructor(closureBytes: number, maxClosureBytes: number) {
    super(
      `the image's closure is ${formatBytes(closureBytes)} (${closureBytes} bytes as Nix archives), ` +
        `more than the ${formatBytes(maxClosureBytes)} (${maxClosureBytes} bytes) this registry builds on demand per image`,
    );
    this.name = 'ClosureTooLargeError';
    this.closureBytes = closureBytes;
    this.maxClosureBytes = maxClosureBytes;
  }
}

/** Bytes in binary units for messages: `1.5 GiB` below ten of a unit, `20 GiB` above. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
