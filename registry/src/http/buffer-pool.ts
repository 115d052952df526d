// Fixed-size buffers handed back and forth between file reads and socket writes. A fresh buffer
// per chunk costs more in garbage collection than in copying (large external allocations make V8
// collect the whole heap), so blob bodies reuse a few.

export class BufferPool {
  readonly chunkSize: number;
  private readonly maxFree: number;
  private readonly free: Buffer[] = [];

  /** Keeps at most `maxFree` idle buffers; more are left to the garbage collector. */
  constructor(chunkSize: number, maxFree: number) {
    this.chunkSize = chunkSize;
    this.maxFree = maxFree;
  }

  take(): Buffer {
    // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared 8 KiB slab.
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.chunkSize);
  }

  /** Only once nothing (no pending read, no socket write) can still touch the buffer. */
  give(buffer: Buffer): void {
    if (buffer.length === this.chunkSize && this.free.length < this.maxFree) this.free.push(buffer);
  }

  get idle(): number {
    return this.free.length;
  }
}
