// Compression threads of our own (worker threads), for a process that serves while it packs.
//
// On libuv's pool (compression-pool.ts's default) every block's zlib state and output buffer belong
// to the event loop's heap: zlib's output buffer is the block's size and more, and V8 counts each
// as external memory until a major GC frees it. A server packing two cold builds ran ~10 major GCs
// a second on its event loop (5-16 ms each: the p99 of warm pulls then). Here a thread compresses
// with zlib's synchronous API, keeps that garbage in its own heap, and moves an output buffer of
// exactly the output's size to the event loop. The threads also run below the event loop's
// priority (a nice value of their own), which libuv's pool cannot: it also reads the blobs served.
//
// The bytes are those of the libuv path: the same zlib calls with the same options (one call per
// block; zstd's frame in one pass), which compression-threads.test.ts checks.

import { Worker } from 'node:worker_threads';
import type { FromCompressionThread, RawDeflate, ToCompressionThread, ZstdCompress } from './compression-protocol.ts';
import { PackError } from './errors.ts';

export class CompressionThreadError extends PackError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CompressionThreadError';
  }
}

export interface CompressionThreadsOptions {
  /** Threads; each compresses one block at a time. */
  count: number;
  /** Nice value each thread sets for itself (Linux: per thread); undefined leaves the process's. */
  nice?: number;
}

type Done = (err: Error | null, output: Buffer) => void;

interface Job {
  message: ToCompressionThread & { id: number };
  done: Done;
}

interface Thread {
  worker: Worker;
  job: Job | undefined;
  /** The nice value the thread reported after setting it. */
  nice: Promise<number>;
}

export class CompressionThreads {
  private readonly count: number;
  private readonly nice: number | undefined;
  private readonly threads: Thread[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;

  constructor(opts: CompressionThreadsOptions) {
    this.count = Math.max(1, opts.count);
    this.nice = opts.nice;
  }

  /** zlib.deflateRaw's contract, on a compression thread. */
  readonly deflateRaw: RawDeflate = (input, options, done) => this.submit({ op: 'deflateRaw', id: this.nextId++, input, options }, done);

  /** One zstd frame, as compression-pool.ts's libuv path gives it, on a compression thread. */
  readonly zstdCompress: ZstdCompress = (input, options, done) => this.submit({ op: 'zstd', id: this.nextId++, input, options }, done);

  /** The nice value each started thread reported (for tests and logs). */
  niceValues(): Promise<number[]> {
    return Promise.all(this.threads.map((t) => t.nice));
  }

  /** Stops every thread; jobs still running fail. */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private submit(message: Job['message'], done: Done): void {
    this.queue.push({ message, done });
    this.dispatch();
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const thread = this.threads.find((t) => t.job === undefined) ?? (this.threads.length < this.count ? this.start() : undefined);
      if (!thread) return;
      const job = this.queue.shift()!;
      thread.job = job;
      thread.worker.ref();
      thread.worker.postMessage(job.message);
    }
  }

  private start(): Thread {
    // Sources run as .ts (tests, bench) or compiled as .js (dist/): the thread's module sits beside this one.
    const file = new URL(import.meta.url.endsWith('.ts') ? './compression-thread.ts' : './compression-thread.js', import.meta.url);
    const worker = new Worker(file);
    let reportNice!: (nice: number) => void;
    const thread: Thread = { worker, job: undefined, nice: new Promise<number>((resolve) => (reportNice = resolve)) };
    this.threads.push(thread);
    if (this.nice !== undefined) worker.postMessage({ op: 'nice', nice: this.nice } satisfies ToCompressionThread);
    else reportNice(NaN);
    worker.on('message', (message: FromCompressionThread) => {
      if (message.op === 'niced') {
        reportNice(message.nice);
        return;
      }
      const job = thread.job;
      if (!job || job.message.id !== message.id) return;
      thread.job = undefined;
      // An idle thread must not keep the process alive.
      worker.unref();
      if (message.op === 'done') job.done(null, Buffer.from(message.output.buffer, message.output.byteOffset, message.output.byteLength));
      else job.done(Object.assign(new Error(message.message), message.code ? { code: message.code } : {}), Buffer.alloc(0));
      this.dispatch();
    });
    let gone = false;
    const lost = (err: Error) => {
      if (gone) return;
      gone = true;
      const at = this.threads.indexOf(thread);
      if (at >= 0) this.threads.splice(at, 1);
      reportNice(NaN);
      const job = thread.job;
      thread.job = undefined;
      job?.done(err, Buffer.alloc(0));
      // The next job starts a new thread.
      this.dispatch();
    };
    worker.on('error', (err) => lost(new CompressionThreadError(`a compression thread failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => lost(new CompressionThreadError(`a compression thread exited (code ${code})`)));
    worker.unref();
    return thread;
  }
}
