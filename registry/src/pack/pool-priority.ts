// Lowers the scheduling priority of libuv's pool threads relative to the event loop, for a
// process whose only job is to pack (`nixery build`).
//
// The deflating pool threads are the pipeline's consumers; its producers are the tar thread
// (pack/tar-thread.ts), which writes the tar into blocks, and the event loop, which hands the
// blocks to zlib. With the same priority three deflating threads share two cores fairly with the
// producers, which then run at their pace while the cores wait on them. Measured before the tar
// thread existed, when the loop also wrote the tar (vmstat while packing 355 MB: 15-23 % idle
// with 3-5 threads runnable): with the pool threads at nice 19 the same pack took 6.3 s instead
// of 7.3-7.5 s (nice 5: 6.7-6.9 s, nice 10: 6.4-6.7 s). With the tar thread, which keeps the
// loop's nice value: 5.31-5.52 s against 5.56-5.99 s for 5 layers into storage (3 pairs).
//
// Not for `nixery serve`: an unprivileged process cannot lower a nice value again, and a server's
// pool also reads the blobs it sends, which must not wait behind other processes on the node.
// In a container the threads compete only with the container's own: its cgroup's CPU weight,
// not nice, divides the node between pods.

import fs from 'node:fs';
import os from 'node:os';

/** libuv names its pool threads so (uv_thread_setname, libuv 1.45 and later). */
const POOL_THREAD_NAME = 'libuv-worker';
const TASKS = '/proc/self/task';

export interface PoolPriorityResult {
  /** Thread ids whose nice value is now `nice`. */
  threads: number[];
}

export class PoolPriorityError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PoolPriorityError';
  }
}

/**
 * Sets every libuv pool thread of this process to `nice` (the event loop keeps its own), after
 * starting the pool if it has not started yet. Throws PoolPriorityError when there is no pool
 * thread to find (no /proc, or threads not named as libuv names them) or one cannot be changed.
 */
export async function lowerPoolThreadPriority(nice: number): Promise<PoolPriorityResult> {
  // libuv creates all of its pool threads on the first piece of work.
  await fs.promises.access('/');
  let tids: number[];
  try {
    tids = fs
      .readdirSync(TASKS)
      .map(Number)
      .filter((tid) => tid !== process.pid && threadName(tid) === POOL_THREAD_NAME);
  } catch (cause) {
    throw new PoolPriorityError(`cannot list this process's threads in ${TASKS}: ${(cause as Error).message}`, { cause });
  }
  if (tids.length === 0) throw new PoolPriorityError(`no thread named ${POOL_THREAD_NAME} in ${TASKS}`);
  for (const tid of tids) {
    try {
      // On Linux, setpriority(PRIO_PROCESS, tid) applies to that one thread.
      os.setPriority(tid, nice);
    } catch (cause) {
      throw new PoolPriorityError(`cannot set the nice value of pool thread ${tid} to ${nice}: ${(cause as Error).message}`, { cause });
    }
  }
  return { threads: tids };
}

function threadName(tid: number): string | undefined {
  try {
    return fs.readFileSync(`${TASKS}/${tid}/comm`, 'utf8').trim();
  } catch {
    // The thread ended between the listing and now.
    return undefined;
  }
}
