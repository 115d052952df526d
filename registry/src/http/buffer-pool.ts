// Fixed-size buffers handed back and forth between file reads and socket writes. A fresh buffer
// per chunk costs more in garbage collection than in copying (large external allocations make V8
// collect the whole heap), so blob bodies reuse a few.
//
// The buffers are cut from slabs larger than glibc's highest dynamic mmap threshold (32 MiB on
// 64-bit), so each slab is a mapping of its own that goes back to the system when it is freed.
// Buffers of 1 MiB each would not: after the first is freed glibc serves them from its heap and
// keeps that memory, so a burst of connections (hundreds of stalled downloads holding two each)
// would leave the process hundreds of MiB larger for good. Once every buffer of a slab is back and
// enough others are idle, the pool frees the slab there and then (detaching its memory, rather
// than waiting for a garbage collection that an idle process may not run for a long time).
//
// So a buffer must be given back only when nothing can touch it any more: no read into it and no
// socket write from it pending (send-file.ts gives one back when its write has called back, or
// once the socket has closed).

/** More than glibc's DEFAULT_MMAP_THRESHOLD_MAX (4 MiB × sizeof(long)). */
const SLAB_MIN_BYTES = 32 * 1024 * 1024 + 1;

interface Slab {
  /** Buffers of the slab not handed out. */
  free: Buffer[];
  buffers: number;
}

export class BufferPool {
  readonly chunkSize: number;
  private readonly maxFree: number;
  private readonly slabs = new Map<ArrayBufferLike, Slab>();
  private idleBuffers = 0;

  /** Keeps at most `maxFree` idle buffers, or one idle slab if that is more; the rest goes back to the system. */
  constructor(chunkSize: number, maxFree: number) {
    this.chunkSize = chunkSize;
    this.maxFree = maxFree;
  }

  take(): Buffer {
    // From the busiest slab that has a buffer free: use gathers in a few slabs, and the others empty.
    let from: Slab | undefined;
    for (const slab of this.slabs.values()) {
      if (slab.free.length > 0 && (from === undefined || slab.free.length < from.free.length)) from = slab;
    }
    from ??= this.addSlab();
    this.idleBuffers -= 1;
    return from.free.pop()!;
  }

  /** Only once nothing (no pending read, no socket write) can still touch the buffer. */
  give(buffer: Buffer): void {
    const slab = this.slabs.get(buffer.buffer);
    // Not from this pool, or from a slab it let go of: the garbage collector's.
    if (slab === undefined || buffer.length !== this.chunkSize) return;
    slab.free.push(buffer);
    this.idleBuffers += 1;
    if (slab.free.length === slab.buffers && this.idleBuffers - slab.buffers >= this.maxFree) {
      this.slabs.delete(buffer.buffer);
      this.idleBuffers -= slab.buffers;
      // Frees the memory now; every view of the slab (all of them idle here) becomes empty.
      (buffer.buffer as ArrayBuffer).transfer(0);
    }
  }

  get idle(): number {
    return this.idleBuffers;
  }

  /** Slabs held, idle or not. */
  get slabCount(): number {
    return this.slabs.size;
  }

  private addSlab(): Slab {
    const buffers = Math.ceil(SLAB_MIN_BYTES / this.chunkSize);
    // allocUnsafeSlow: memory of its own, never a slice of Node's shared 8 KiB slab.
    const memory = Buffer.allocUnsafeSlow(buffers * this.chunkSize);
    const slab: Slab = { free: [], buffers };
    for (let i = buffers - 1; i >= 0; i--) slab.free.push(memory.subarray(i * this.chunkSize, (i + 1) * this.chunkSize));
    this.slabs.set(memory.buffer, slab);
    this.idleBuffers += buffers;
    return slab;
  }
}
