import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runSync } from '../test-support/programs.ts';

const MODULE = fileURLToPath(new URL('./pool-priority.ts', import.meta.url));

interface ThreadReport {
  changed: number[];
  threads: Array<{ tid: number; name: string; nice: number }>;
  uvThreads: number;
}

/** Runs lowerPoolThreadPriority in a process of its own: a nice value cannot be raised again. */
function inChild(nice: number, env: NodeJS.ProcessEnv = {}): ThreadReport {
  const script = `
    import fs from 'node:fs';
    const { lowerPoolThreadPriority } = await import(${JSON.stringify(MODULE)});
    const { threads: changed } = await lowerPoolThreadPriority(${nice});
    const threads = fs.readdirSync('/proc/self/task').map((tid) => {
      const stat = fs.readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
      // Fields after the parenthesised name: state is the 3rd, nice the 19th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return { tid: Number(tid), name: fs.readFileSync('/proc/self/task/' + tid + '/comm', 'utf8').trim(), nice: Number(fields[16]) };
    });
    process.stdout.write(JSON.stringify({ changed, threads, uvThreads: Number(process.env.UV_THREADPOOL_SIZE) || 4 }));
  `;
  const run = runSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env } });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout.toString()) as ThreadReport;
}

describe('lowering the pool threads below the event loop', () => {
  it('sets every libuv pool thread to the nice value and leaves the event loop and V8 threads alone', () => {
    const report = inChild(7);
    const pool = report.threads.filter((t) => t.name === 'libuv-worker');
    assert.equal(pool.length, report.uvThreads, 'the pool was started and all its threads found');
    assert.deepEqual(report.changed.toSorted(), pool.map((t) => t.tid).toSorted());
    for (const t of pool) assert.equal(t.nice, 7, `pool thread ${t.tid}`);
    const others = report.threads.filter((t) => t.name !== 'libuv-worker');
    assert.ok(others.some((t) => t.tid === Math.min(...report.threads.map((x) => x.tid))), 'the main thread is listed');
    for (const t of others) assert.equal(t.nice, 0, `${t.name} (${t.tid}) keeps its priority`);
  });

  it('finds a pool of any size', () => {
    const report = inChild(3, { UV_THREADPOOL_SIZE: '6' });
    assert.equal(report.changed.length, 6);
  });
});
