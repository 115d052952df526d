// A layer's tar, produced on the tar thread (tar-thread.ts) in blocks of
// shared memory. The gzip stage takes the blocks themselves (`blocks()`), so
// the tar's bytes are never copied on the event loop; anything else reads the
// tar as an ordinary stream.

import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { PackError, packErrorFrom } from './errors.ts';
import type { LayerSpec } from './layer-spec.ts';
import type { FromTarThread, TarSummary, ToTarThread } from './tar-protocol.ts';

/** Part of the gzip output format (parallel-gzip.ts). */
export const TAR_BLOCK_SIZE = 128 * 1024;

/** How a layer's tar is cut into blocks, and how many the tar thread may fill ahead. */
export interface BlockCut {
  /** Bytes per block: part of the compressed format (each codec cuts its own way). */
  size: number;
  /**
   * Blocks the tar thread may fill ahead of the compressors: enough for every compressing thread,
   * the one held back (gzip's next dictionary) and a few ready, so a compressor never waits for the tar.
   */
  slots: number;
  /** The CRC-32 of the whole tar in its summary: gzip's trailer needs it, zstd's frames carry their own checksums. */
  crc32: boolean;
}

// Gzip keeps 4 blocks per deflating thread in flight (parallel-gzip.ts), plus the one held as the next
// block's dictionary and a few ready.
export const GZIP_CUT: BlockCut = { size: TAR_BLOCK_SIZE, slots: 16, crc32: true };
// Memory of finished layers, for the next ones: a SharedArrayBuffer is freed only once both
// threads have collected it, and an image of many small layers would otherwise hold one per layer.
// Four of gzip's 2 MiB; two (the builder packs two layers at a time) of anything bigger.
const pooledMemories = (byteLength: number) => (byteLength <= GZIP_CUT.size * GZIP_CUT.slots ? 4 : 2);
/** Pooled memory by its byte length (a cut's size × slots). */
const memories = new Map<number, SharedArrayBuffer[]>();

export class TarThreadError extends PackError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TarThreadError';
  }
}

export interface TarBlock {
  /** The next bytes of the tar; valid until `release()`. */
  data: Buffer;
  /**
   * The archive's last block; `summary` is then known. Never full: a tar that ends on a block
   * boundary ends with an empty last block, as the tests' reference Transform cuts it (test-support.ts).
   */
  last: boolean;
  /** Gives the memory back to the tar thread to fill again. */
  release(): void;
}

export interface TarBlocks {
  /** The next block, in order; rejects with the layer's error. */
  next(): Promise<TarBlock>;
  /** Resolves after the last block; rejects with the layer's error. */
  summary: Promise<TarSummary>;
  /** Abandons the layer: the tar thread closes its files. */
  stop(err?: Error): void;
}

/** A deterministic layer tar (see store-tar.ts and customisation.ts). */
export class LayerTar extends Readable {
  private readonly spec: LayerSpec;
  private source: Job | undefined;
  private streaming = false;

  constructor(spec: LayerSpec) {
    super();
    this.spec = spec;
  }

  /** Takes the tar as blocks (cut as `cut` says) instead of as a stream; once, and only before reading it. */
  blocks(cut: BlockCut = GZIP_CUT): TarBlocks {
    if (this.source) throw new PackError('the layer tar is already being read');
    this.source = new Job(this.spec, cut);
    const job = this.source;
    // Destroying the stream still abandons the layer.
    return { next: () => job.next(), summary: job.summary, stop: (err) => job.stop(err) };
  }

  override _read(): void {
    if (!this.streaming) {
      if (this.source) throw new PackError('the layer tar is being read as blocks');
      this.source = new Job(this.spec, GZIP_CUT);
      this.streaming = true;
    }
    const job = this.source!;
    job.next().then(
      (block) => {
        // A copy: the consumer may hold on to what it read, the slot is refilled.
        const chunk = Buffer.from(block.data);
        block.release();
        if (chunk.length > 0) this.push(chunk);
        if (block.last) this.push(null);
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.source?.stop(err ?? undefined);
    callback(err);
  }
}

/** One layer on the tar thread: grants it slots, hands out the blocks it fills in order. */
class Job {
  private readonly id: number;
  private readonly memory: SharedArrayBuffer;
  private readonly blockSize: number;
  private readonly filled: Array<{ slot: number; length: number; last: boolean }> = [];
  private waiter: { resolve: (block: TarBlock) => void; reject: (err: Error) => void } | undefined;
  private failure: Error | undefined;
  private ended = false;
  private released: number[] = [];
  private grantQueued = false;
  /** Blocks handed out and not yet released. */
  private outstanding = 0;
  readonly summary: Promise<TarSummary>;
  private settleSummary!: { resolve: (s: TarSummary) => void; reject: (err: Error) => void };

  constructor(spec: LayerSpec, cut: BlockCut) {
    this.blockSize = cut.size;
    this.memory = memories.get(cut.size * cut.slots)?.pop() ?? new SharedArrayBuffer(cut.size * cut.slots);
    this.summary = new Promise<TarSummary>((resolve, reject) => (this.settleSummary = { resolve, reject }));
    // Callers may only watch next(); the error is reported there too.
    this.summary.catch(() => {});
    this.id = tarThread.start(this, spec, this.memory, cut);
    tarThread.send({ op: 'fill', id: this.id, slots: Array.from({ length: cut.slots }, (_, i) => i) });
  }

  next(): Promise<TarBlock> {
    if (this.waiter) return Promise.reject(new PackError('a layer tar block is already awaited'));
    const ready = this.filled.shift();
    if (ready) return Promise.resolve(this.block(ready));
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.reject(new PackError('read past the end of the layer tar'));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  stop(err?: Error): void {
    if (this.ended || this.failure) return;
    this.fail(err ?? new PackError('layer tar abandoned'));
    tarThread.send({ op: 'stop', id: this.id });
  }

  /** From the tar thread. */
  onMessage(message: FromTarThread): void {
    if (message.op === 'error') {
      this.fail(packErrorFrom(message.error));
      return;
    }
    const last = message.summary !== undefined;
    if (last) {
      this.ended = true;
      tarThread.finished(this.id);
      this.settleSummary.resolve(message.summary!);
    }
    const filled = { slot: message.slot, length: message.length, last };
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve(this.block(filled));
    } else {
      this.filled.push(filled);
    }
  }

  /** The tar thread failed or went away. */
  fail(err: Error): void {
    if (this.failure || this.ended) return;
    this.failure = err;
    this.filled.length = 0;
    tarThread.finished(this.id);
    this.settleSummary.reject(err);
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(err);
  }

  private block(filled: { slot: number; length: number; last: boolean }): TarBlock {
    let released = false;
    this.outstanding++;
    return {
      data: Buffer.from(this.memory, filled.slot * this.blockSize, filled.length),
      last: filled.last,
      release: () => {
        if (released) return;
        released = true;
        this.outstanding--;
        this.grant(filled.slot);
        // The tar thread is done with a finished layer's memory, and now so is everyone else.
        // (A failed layer's is not reused: the thread may still be filling a slot of it.)
        if (this.ended && this.outstanding === 0 && this.filled.length === 0) poolMemory(this.memory);
      },
    };
  }

  /** Slots released in one turn of the event loop go back in one message. */
  private grant(slot: number): void {
    if (this.ended || this.failure) return;
    this.released.push(slot);
    if (this.grantQueued) return;
    this.grantQueued = true;
    queueMicrotask(() => {
      this.grantQueued = false;
      const slots = this.released;
      this.released = [];
      if (!this.ended && !this.failure && slots.length > 0) tarThread.send({ op: 'fill', id: this.id, slots });
    });
  }
}

function poolMemory(memory: SharedArrayBuffer): void {
  const pooled = memories.get(memory.byteLength) ?? [];
  memories.set(memory.byteLength, pooled);
  if (pooled.length < pooledMemories(memory.byteLength)) pooled.push(memory);
}

/** The process's one tar thread, started on first use and kept only while layers are being packed. */
class TarThread {
  private worker: Worker | undefined;
  private readonly jobs = new Map<number, Job>();
  private nextId = 1;

  start(job: Job, spec: LayerSpec, memory: SharedArrayBuffer, cut: BlockCut): number {
    const id = this.nextId++;
    this.jobs.set(id, job);
    this.ensure();
    this.worker!.ref();
    this.send({ op: 'start', id, spec, memory, blockSize: cut.size, crc32: cut.crc32 });
    return id;
  }

  send(message: ToTarThread): void {
    this.worker?.postMessage(message);
  }

  warm(): void {
    this.ensure();
    if (this.jobs.size === 0) this.worker!.unref();
  }

  finished(id: number): void {
    this.jobs.delete(id);
    // An idle thread must not keep the process alive.
    if (this.jobs.size === 0) this.worker?.unref();
  }

  private ensure(): void {
    if (this.worker) return;
    // Sources run as .ts (tests, bench) or compiled as .js (dist/): the thread's module sits beside this one.
    const file = new URL(import.meta.url.endsWith('.ts') ? './tar-thread.ts' : './tar-thread.js', import.meta.url);
    const worker = new Worker(file);
    this.worker = worker;
    worker.on('message', (message: FromTarThread) => this.jobs.get(message.id)?.onMessage(message));
    const lost = (err: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const job of [...this.jobs.values()]) job.fail(err);
      this.jobs.clear();
    };
    worker.on('error', (err) => lost(new TarThreadError(`the tar thread failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => lost(new TarThreadError(`the tar thread exited (code ${code})`)));
  }
}

const tarThread = new TarThread();

/** Starts the tar thread ahead of the first layer (it takes tens of milliseconds); it does not keep the process alive. */
export function startTarThread(): void {
  tarThread.warm();
}
