// A compression thread (compression-threads.ts): compresses one block at a time with zlib's
// synchronous API, so the zlib state and output buffers of every block are this thread's garbage,
// not the event loop's, and hands back an output buffer of exactly the output's size.
//
// Loads only Node's own modules: registry/src/architecture.test.ts checks.

import os from 'node:os';
import { parentPort } from 'node:worker_threads';
import zlib from 'node:zlib';
import type { FromCompressionThread, ToCompressionThread } from './compression-protocol.ts';

const port = parentPort;
if (!port) throw new Error('compression-thread.ts runs as a worker thread (see compression-threads.ts)');

port.on('message', (message: ToCompressionThread) => {
  if (message.op === 'nice') {
    // On Linux, this thread alone (setpriority on its thread id). A value that cannot be set leaves
    // the thread at the process's priority, which the reply shows; compressing goes on either way.
    try {
      os.setPriority(0, message.nice);
    } catch {}
    post({ op: 'niced', nice: os.getPriority(0) });
    return;
  }
  try {
    const output = message.op === 'deflateRaw' ? zlib.deflateRawSync(message.input, message.options) : zlib.zstdCompressSync(message.input, message.options);
    // A copy of exactly the output's size, moved to the event loop: zlib's buffer is the
    // chunk size (the input's size and more).
    const exact = new Uint8Array(output.length);
    exact.set(output);
    port.postMessage({ op: 'done', id: message.id, output: exact } satisfies FromCompressionThread, [exact.buffer]);
  } catch (err) {
    post({ op: 'failed', id: message.id, message: (err as Error).message, code: (err as NodeJS.ErrnoException).code });
  }
});

function post(message: FromCompressionThread): void {
  port!.postMessage(message);
}
