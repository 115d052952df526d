// Concurrent callers asking for the same key share one run of the work.
export class SingleFlight<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  run(key: string, work: () => Promise<T>): Promise<T> {
    const existing = this.inFlight.get(key);
    if (existing) return existing;
    const promise = (async () => {
      try {
        return await work();
      } finally {
        this.inFlight.delete(key);
      }
    })();
    this.inFlight.set(key, promise);
    return promise;
  }

  /** Whether a run of this key is in flight (run() would join it). */
  has(key: string): boolean {
    return this.inFlight.has(key);
  }

  get size(): number {
    return this.inFlight.size;
  }
}

/** Runs at most `limit` tasks at once; the rest wait in arrival order. */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly limit: number;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
    this.limit = limit;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** Maps items through `fn` with at most `limit` in flight, keeping input order in the output. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const limiter = new Limiter(limit);
  return Promise.all(items.map((item, index) => limiter.run(() => fn(item, index))));
}

/** A new job found the queue full: it was neither run nor queued. */
export class QueueFullError extends Error {
  readonly maxQueued: number;
  constructor(maxQueued: number) {
    super(`the queue is full (${maxQueued} jobs waiting)`);
    this.name = 'QueueFullError';
    this.maxQueued = maxQueued;
  }
}

/** Every caller of a queued job left before it started: it was dropped, never run (or, as Job.abandoned's reason, left it while it ran). */
export class JobAbandonedError extends Error {
  constructor(message = 'every caller left before the job started') {
    super(message);
    this.name = 'JobAbandonedError';
  }
}

export interface JobQueueOptions {
  /** Jobs running at once. */
  concurrency: number;
  /** Jobs waiting for a slot, at most; a new job beyond that is refused with QueueFullError. 0: none wait. */
  maxQueued: number;
  /** Told the number of waiting jobs whenever it changes. */
  onQueueLength?: (length: number) => void;
  /** Told of each queued job dropped because all its callers left. */
  onAbandoned?: (key: string) => void;
}

/** What a running job may do with its slot. */
export interface Job {
  /** Gives the slot back before the work ends (e.g. while it only waits for another job); idempotent. */
  release(): void;
  /**
   * Aborts once every caller of the running job has left (only callers with a signal can). The
   * work may go on regardless (a build's result is cached for the next request); work that only
   * waits, such as a wait for another replica's build, stops.
   */
  readonly abandoned: AbortSignal;
}

export interface JobRunOptions {
  /**
   * This caller's interest: aborting it rejects this caller's promise with the signal's reason. A
   * queued job whose every caller has aborted is dropped before it starts; a running one runs on
   * (its result is not wasted: caches keep it). A caller without a signal never leaves.
   */
  signal?: AbortSignal;
  /** Called once before a new job (not one joined) is run or queued; throwing refuses it. */
  admit?: () => void;
}

interface Entry<T> {
  key: string;
  work: (job: Job) => Promise<T>;
  state: 'queued' | 'running';
  /** Callers still waiting; Infinity once one without a signal joined. */
  callers: number;
  promise: Promise<T>;
  /** Aborted when the last caller of the running job left. */
  abandoned: AbortController;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

/**
 * Keyed jobs with single flight (callers of one key share one run), at most `concurrency` running
 * and at most `maxQueued` waiting in arrival order. The bound and the dropping of abandoned jobs
 * are what keep a flood of requests from turning into a backlog of work nobody waits for.
 */
export class JobQueue<T> {
  private readonly options: JobQueueOptions;
  private readonly entries = new Map<string, Entry<T>>();
  private readonly waiting: Entry<T>[] = [];
  private active = 0;

  constructor(options: JobQueueOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${options.concurrency}`);
    if (!Number.isInteger(options.maxQueued) || options.maxQueued < 0) throw new RangeError(`maxQueued must be a whole number, got ${options.maxQueued}`);
    this.options = options;
  }

  /** Jobs waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Jobs holding a slot. */
  get running(): number {
    return this.active;
  }

  /** Whether a job of this key is queued or running (a new caller would join it). */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /**
   * Joins the job of `key`, or starts `work` as a new one (now, or queued when every slot is
   * taken). Rejects with QueueFullError when the queue is full, with what `admit` threw, or with
   * the signal's reason once this caller left.
   */
  async run(key: string, work: (job: Job) => Promise<T>, options: JobRunOptions = {}): Promise<T> {
    const { signal } = options;
    signal?.throwIfAborted();
    let entry = this.entries.get(key);
    if (!entry) {
      const startsNow = this.active < this.options.concurrency;
      if (!startsNow && this.waiting.length >= this.options.maxQueued) throw new QueueFullError(this.options.maxQueued);
      options.admit?.();
      entry = this.create(key, work);
      if (startsNow) this.start(entry);
      else {
        this.waiting.push(entry);
        this.options.onQueueLength?.(this.waiting.length);
      }
    }
    return this.join(entry, signal);
  }

  private create(key: string, work: (job: Job) => Promise<T>): Entry<T> {
    let resolve!: (value: T) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Callers that left no longer listen; the outcome must not become an unhandled rejection.
    promise.catch(() => {});
    const entry: Entry<T> = { key, work, state: 'queued', callers: 0, promise, abandoned: new AbortController(), resolve, reject };
    this.entries.set(key, entry);
    return entry;
  }

  private join(entry: Entry<T>, signal: AbortSignal | undefined): Promise<T> {
    if (!signal) {
      entry.callers = Infinity;
      return entry.promise;
    }
    entry.callers++;
    return new Promise<T>((resolve, reject) => {
      const leave = () => {
        reject(signal.reason);
        entry.callers--;
        if (entry.callers === 0 && entry.state === 'queued') this.drop(entry);
        else if (entry.callers === 0) entry.abandoned.abort(new JobAbandonedError('every caller left while the job ran'));
      };
      signal.addEventListener('abort', leave, { once: true });
      entry.promise.then(
        (value) => {
          signal.removeEventListener('abort', leave);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', leave);
          reject(error);
        },
      );
    });
  }

  private drop(entry: Entry<T>): void {
    const index = this.waiting.indexOf(entry);
    if (index >= 0) this.waiting.splice(index, 1);
    this.entries.delete(entry.key);
    entry.reject(new JobAbandonedError());
    this.options.onQueueLength?.(this.waiting.length);
    this.options.onAbandoned?.(entry.key);
  }

  private start(entry: Entry<T>): void {
    entry.state = 'running';
    this.active++;
    let holdsSlot = true;
    const release = () => {
      if (!holdsSlot) return;
      holdsSlot = false;
      this.active--;
      this.startNext();
    };
    // A microtask later, so that run() has registered its caller before the work can settle.
    void Promise.resolve()
      .then(() => entry.work({ release, abandoned: entry.abandoned.signal }))
      .then(entry.resolve, entry.reject)
      .finally(() => {
        if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
        release();
      });
  }

  private startNext(): void {
    let changed = false;
    while (this.active < this.options.concurrency && this.waiting.length > 0) {
      this.start(this.waiting.shift()!);
      changed = true;
    }
    if (changed) this.options.onQueueLength?.(this.waiting.length);
  }
}
