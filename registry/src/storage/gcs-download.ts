// Reading an object through the registry without trusting one HTTP response to finish.
// @google-cloud/storage never retries a download once its body has started: a reset mid-body
// surfaces as an error, and a response that simply stops sending never ends at all. This reader
// counts what arrived, gives up on a response that is silent for too long, and asks again for the
// remaining bytes with a Range request, so a client of the registry sees one uninterrupted body.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ResumingReadOptions {
  /** Object name, for errors and logs. */
  object: string;
  /** One request for bytes start..end (inclusive) of the object. */
  open(start: number, end: number): Readable;
  start: number;
  /** Inclusive; start - 1 for nothing. */
  end: number;
  stallTimeoutMs: number;
  /** Attempts after a failure that made no progress; progress resets the count. */
  maxResumes: number;
  retryDelayMs(attempt: number): number;
  isRetryable(error: unknown): boolean;
  /**
   * The whole range must hash to this (hex SHA-256). The last chunk is held back until it is
   * checked, so a reader never receives all the bytes of a body that turns out to be wrong.
   */
  expectedSha256?: string;
  onResume?(event: { object: string; offset: number; attempt: number; error: unknown }): void;
}

export class GcsStallError extends Error {
  readonly code = 'GCS_STALLED';
  readonly object: string;
  readonly offset: number;
  constructor(object: string, offset: number, ms: number) {
    super(`reading gs object ${object}: no data for ${ms} ms at byte ${offset}`);
    this.name = 'GcsStallError';
    this.object = object;
    this.offset = offset;
  }
}

export class GcsShortReadError extends Error {
  readonly code = 'GCS_SHORT_READ';
  readonly object: string;
  readonly offset: number;
  constructor(object: string, offset: number, end: number) {
    super(`reading gs object ${object}: the response ended at byte ${offset}, before byte ${end}`);
    this.name = 'GcsShortReadError';
    this.object = object;
    this.offset = offset;
  }
}

export class GcsIntegrityError extends Error {
  readonly code = 'GCS_INTEGRITY';
  readonly object: string;
  readonly expected: string;
  readonly actual: string;
  constructor(object: string, what: string, expected: string, actual: string) {
    super(`gs object ${object}: ${what} is ${actual}, expected ${expected}`);
    this.name = 'GcsIntegrityError';
    this.object = object;
    this.expected = expected;
    this.actual = actual;
  }
}

export function resumingRead(options: ResumingReadOptions): Readable {
  return Readable.from(chunks(options), { objectMode: false });
}

async function* chunks(o: ResumingReadOptions): AsyncGenerator<Buffer> {
  const hash = o.expectedSha256 !== undefined ? createHash('sha256') : undefined;
  let held: Buffer | undefined;
  let offset = o.start;
  let failures = 0;
  while (offset <= o.end) {
    const source = o.open(offset, o.end);
    const iterator = source[Symbol.asyncIterator]();
    try {
      while (offset <= o.end) {
        // Only time spent waiting on the service counts as a stall, not time our reader spends
        // on the chunk we handed it.
        const stall = setTimeout(() => source.destroy(new GcsStallError(o.object, offset, o.stallTimeoutMs)), o.stallTimeoutMs);
        let next: IteratorResult<unknown>;
        try {
          next = await iterator.next();
        } finally {
          clearTimeout(stall);
        }
        if (next.done) throw new GcsShortReadError(o.object, offset, o.end);
        let chunk = next.value as Buffer;
        if (chunk.length > o.end - offset + 1) chunk = chunk.subarray(0, o.end - offset + 1);
        if (chunk.length === 0) continue;
        offset += chunk.length;
        failures = 0;
        if (hash) {
          hash.update(chunk);
          if (held) yield held;
          held = chunk;
        } else {
          yield chunk;
        }
      }
    } catch (error) {
      if (!o.isRetryable(error) || ++failures > o.maxResumes) throw error;
      o.onResume?.({ object: o.object, offset, attempt: failures, error });
      await sleep(o.retryDelayMs(failures));
    } finally {
      source.destroy();
    }
  }
  if (hash) {
    const actual = hash.digest('hex');
    if (actual !== o.expectedSha256) throw new GcsIntegrityError(o.object, 'the SHA-256 of the downloaded bytes', o.expectedSha256!, actual);
  }
  if (held) yield held;
}
