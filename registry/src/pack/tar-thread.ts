// The tar thread: walks the store, encodes the tar and reads file contents
// into blocks of shared memory, hashing them on the way (SHA-256 for the diff
// ID, CRC-32 for the gzip trailer when the layer is gzip's). Everything here blocks, which is why it is
// not the event loop: a server building a layer keeps answering requests.
//
// One thread serves every layer of the process, a block at a time per layer
// in turn. It needs about a tenth of the CPU the deflaters need, and the
// number of blocks granted to each layer bounds its memory.
//
// The thread loads this module and what it imports, none of which is the event
// loop's side (layer-tar.ts, the gzip stage): registry/src/architecture.test.ts checks.

import { createHash } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { crc32 } from 'node:zlib';
import { packErrorData } from './errors.ts';
import { layerEntries } from './layer-spec.ts';
import { TarBlockWriter } from './tar-blocks.ts';
import type { FromTarThread, ToTarThread } from './tar-protocol.ts';

interface Job {
  id: number;
  writer: TarBlockWriter;
  memory: SharedArrayBuffer;
  blockSize: number;
  free: number[];
  hash: Hash;
  /** Undefined: not asked for (only gzip's trailer needs it). */
  crc: number | undefined;
  size: number;
}

const port = parentPort;
if (!port) throw new Error('tar-thread.ts runs as a worker thread (see layer-tar.ts)');

const jobs = new Map<number, Job>();
let scheduled = false;

port.on('message', (message: ToTarThread) => {
  switch (message.op) {
    case 'start':
      jobs.set(message.id, {
        id: message.id,
        // A generator: nothing is read from the store until the first block is filled.
        writer: new TarBlockWriter(layerEntries(message.spec)),
        memory: message.memory,
        blockSize: message.blockSize,
        free: [],
        hash: createHash('sha256'),
        crc: message.crc32 ? 0 : undefined,
        size: 0,
      });
      break;
    case 'fill':
      jobs.get(message.id)?.free.push(...message.slots);
      schedule();
      break;
    case 'stop': {
      jobs.get(message.id)?.writer.close();
      jobs.delete(message.id);
      break;
    }
  }
});

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(round);
}

/** One block for every layer that has a free slot; then the event loop, for new grants and stops. */
function round(): void {
  scheduled = false;
  let more = false;
  for (const job of jobs.values()) {
    const slot = job.free.shift();
    if (slot === undefined) continue;
    fillOne(job, slot);
    if (jobs.has(job.id) && job.free.length > 0) more = true;
  }
  if (more) schedule();
}

function fillOne(job: Job, slot: number): void {
  const block = Buffer.from(job.memory, slot * job.blockSize, job.blockSize);
  let length: number;
  try {
    length = job.writer.fill(block);
  } catch (err) {
    jobs.delete(job.id);
    post({ op: 'error', id: job.id, error: packErrorData(err) });
    return;
  }
  const filled = block.subarray(0, length);
  job.hash.update(filled);
  if (job.crc !== undefined) job.crc = crc32(filled, job.crc);
  job.size += length;
  if (!job.writer.done) {
    post({ op: 'block', id: job.id, slot, length });
    return;
  }
  jobs.delete(job.id);
  post({ op: 'block', id: job.id, slot, length, summary: { digest: `sha256:${job.hash.digest('hex')}`, crc: job.crc ?? 0, size: job.size } });
}

function post(message: FromTarThread): void {
  port!.postMessage(message);
}
