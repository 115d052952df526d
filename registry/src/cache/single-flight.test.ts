import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { JobAbandonedError, JobQueue, Limiter, mapLimited, QueueFullError, SingleFlight, type Job } from './single-flight.ts';

const tick = () => new Promise((r) => setImmediate(r));

describe('single flight', () => {
  it('runs the work once for concurrent callers of one key and shares the result', async () => {
    const flight = new SingleFlight<number>();
    let runs = 0;
    const work = async () => {
      runs++;
      await tick();
      return 42;
    };
    const results = await Promise.all(Array.from({ length: 10 }, () => flight.run('k', work)));
    assert.deepEqual(results, Array(10).fill(42));
    assert.equal(runs, 1);
    assert.equal(flight.size, 0);
  });

  it('shares failures too, and runs again after a failure', async () => {
    const flight = new SingleFlight<number>();
    let runs = 0;
    const failing = async () => {
      runs++;
      await tick();
      throw new Error('boom');
    };
    const outcomes = await Promise.allSettled([flight.run('k', failing), flight.run('k', failing)]);
    assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected']);
    await assert.rejects(flight.run('k', failing));
    assert.equal(runs, 2);
  });

  it('runs different keys independently', async () => {
    const flight = new SingleFlight<string>();
    assert.deepEqual(await Promise.all([flight.run('a', async () => 'a'), flight.run('b', async () => 'b')]), ['a', 'b']);
  });
});

describe('limiter', () => {
  it('never runs more than the limit at once and keeps output order', async () => {
    let active = 0;
    let peak = 0;
    const out = await mapLimited([5, 4, 3, 2, 1], 2, async (n) => {
      active++;
      peak = Math.max(peak, active);
      for (let i = 0; i < n; i++) await tick();
      active--;
      return n * 10;
    });
    assert.deepEqual(out, [50, 40, 30, 20, 10]);
    assert.equal(peak, 2);
  });

  it('rejects a limit below one', () => {
    assert.throws(() => new Limiter(0), RangeError);
  });

  it('releases its slot when a task fails', async () => {
    const limiter = new Limiter(1);
    await assert.rejects(limiter.run(async () => { throw new Error('x'); }));
    assert.equal(await limiter.run(async () => 'next'), 'next');
  });
});

/** Work that runs until the test lets it finish. */
function gate<T>(value: T) {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const started: string[] = [];
  return {
    started,
    open: () => open(),
    work: (key: string) => async (_job: Job) => {
      started.push(key);
      await opened;
      return value;
    },
  };
}

describe('job queue', () => {
  it('runs up to `concurrency` jobs, queues up to `maxQueued` more, and refuses the next with QueueFullError', async () => {
    const lengths: number[] = [];
    const queue = new JobQueue<string>({ concurrency: 2, maxQueued: 3, onQueueLength: (n) => lengths.push(n) });
    const g = gate('done');
    const admitted: string[] = [];
    const runs = ['a', 'b', 'c', 'd', 'e'].map((k) => queue.run(k, g.work(k), { admit: () => admitted.push(k) }));
    await tick();
    assert.deepEqual(g.started, ['a', 'b']);
    assert.equal(queue.running, 2);
    assert.equal(queue.queued, 3);
    await assert.rejects(queue.run('f', g.work('f'), { admit: () => admitted.push('f') }), (error: unknown) => {
      assert.ok(error instanceof QueueFullError);
      assert.equal(error.maxQueued, 3);
      return true;
    });
    assert.deepEqual(admitted, ['a', 'b', 'c', 'd', 'e'], 'a refused job is not admitted');
    // Joining a queued or running job needs no room and no admission.
    const joined = queue.run('c', g.work('c'), { admit: () => admitted.push('again') });
    assert.equal(queue.queued, 3);
    g.open();
    assert.deepEqual(await Promise.all([...runs, joined]), Array(6).fill('done'));
    assert.deepEqual(g.started, ['a', 'b', 'c', 'd', 'e'], 'queued jobs start in arrival order, each once');
    assert.ok(Math.max(...lengths) <= 3);
    assert.equal(lengths.at(-1), 0);
    assert.equal(queue.queued + queue.running, 0);
  });

  it('with maxQueued 0 runs what fits in the slots and refuses the rest', async () => {
    const queue = new JobQueue<number>({ concurrency: 1, maxQueued: 0 });
    const g = gate(1);
    const first = queue.run('a', g.work('a'));
    await assert.rejects(queue.run('b', g.work('b')), QueueFullError);
    g.open();
    assert.equal(await first, 1);
  });

  it('drops a queued job once every caller has left, without ever starting it', async () => {
    const abandoned: string[] = [];
    const lengths: number[] = [];
    const queue = new JobQueue<string>({ concurrency: 1, maxQueued: 4, onAbandoned: (k) => abandoned.push(k), onQueueLength: (n) => lengths.push(n) });
    const g = gate('x');
    const running = queue.run('busy', g.work('busy'));
    const one = new AbortController();
    const two = new AbortController();
    const first = queue.run('queued', g.work('queued'), { signal: one.signal });
    const second = queue.run('queued', g.work('queued'), { signal: two.signal });
    assert.equal(queue.queued, 1);
    one.abort(new Error('client one left'));
    await assert.rejects(first, /client one left/);
    assert.equal(queue.queued, 1, 'one caller still waits');
    assert.deepEqual(abandoned, []);
    two.abort(new Error('client two left'));
    await assert.rejects(second, /client two left/);
    assert.equal(queue.queued, 0);
    assert.deepEqual(abandoned, ['queued']);
    assert.equal(lengths.at(-1), 0);
    assert.equal(queue.has('queued'), false, 'a later request starts afresh');
    g.open();
    assert.equal(await running, 'x');
    await tick();
    assert.deepEqual(g.started, ['busy'], 'the abandoned job never ran');
  });

  it('keeps a queued job whose caller without a signal waits, and runs on a started job whose callers all left', async () => {
    const queue = new JobQueue<string>({ concurrency: 1, maxQueued: 4 });
    const g = gate('y');
    const leaving = new AbortController();
    const started = queue.run('started', g.work('started'), { signal: leaving.signal });
    const patient = queue.run('patient', g.work('patient'));
    const impatient = new AbortController();
    const joined = queue.run('patient', g.work('patient'), { signal: impatient.signal });
    await tick();
    leaving.abort(new Error('gone'));
    impatient.abort(new Error('gone too'));
    await assert.rejects(started, /gone/);
    await assert.rejects(joined, /gone too/);
    assert.equal(queue.running, 1, 'the started job still runs: its result is kept by the caches');
    assert.equal(queue.queued, 1, 'a caller without a signal never leaves');
    // A new caller joins the job still running rather than starting it again.
    const late = queue.run('started', g.work('started'));
    g.open();
    assert.equal(await late, 'y');
    assert.equal(await patient, 'y');
    assert.deepEqual(g.started, ['started', 'patient']);
  });

  it('refuses at once a caller whose signal has already aborted, creating nothing', async () => {
    const queue = new JobQueue<string>({ concurrency: 1, maxQueued: 1 });
    const gone = AbortSignal.abort(new Error('already gone'));
    await assert.rejects(queue.run('k', async () => 'never', { signal: gone }), /already gone/);
    assert.equal(queue.has('k'), false);
  });

  it('lets a running job hand back its slot early: the next queued job starts while it still waits', async () => {
    const queue = new JobQueue<string>({ concurrency: 1, maxQueued: 2 });
    const g = gate('z');
    const first = queue.run('first', async (job) => {
      job.release();
      job.release();
      await g.work('first')(job);
      return 'first';
    });
    const second = queue.run('second', g.work('second'));
    await tick();
    await tick();
    assert.deepEqual(g.started, ['first', 'second']);
    assert.equal(queue.running, 1, 'a released slot is counted once');
    g.open();
    assert.deepEqual(await Promise.all([first, second]), ['first', 'z']);
  });

  it('passes failures to every caller and frees the slot', async () => {
    const queue = new JobQueue<string>({ concurrency: 1, maxQueued: 1 });
    const failing = async () => {
      await tick();
      throw new Error('nix failed');
    };
    const results = await Promise.allSettled([queue.run('k', failing), queue.run('k', failing)]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
    assert.equal(await queue.run('k', async () => 'again'), 'again');
    assert.equal(queue.running, 0);
  });

  it('treats a dropped job\'s rejection as handled', async () => {
    // JobAbandonedError reaches nobody; an unhandled rejection would fail this test file.
    const queue = new JobQueue<string>({ concurrency: 1, maxQueued: 1 });
    const g = gate('w');
    const busy = queue.run('busy', g.work('busy'));
    const controller = new AbortController();
    const queued = queue.run('q', g.work('q'), { signal: controller.signal });
    controller.abort(new JobAbandonedError());
    await assert.rejects(queued, JobAbandonedError);
    g.open();
    await busy;
  });

  it('tells a running job once every caller has left (Job.abandoned), and not before', async () => {
    const queue = new JobQueue<string>({ concurrency: 1, maxQueued: 0 });
    let job!: Job;
    let finish!: (v: string) => void;
    const a = new AbortController();
    const b = new AbortController();
    const work = (j: Job) => ((job = j), new Promise<string>((r) => (finish = r)));
    const first = queue.run('k', work, { signal: a.signal });
    const second = queue.run('k', work, { signal: b.signal });
    await tick();
    a.abort(new Error('a left'));
    await assert.rejects(first, /a left/);
    assert.equal(job.abandoned.aborted, false, 'one caller still waits');
    b.abort(new Error('b left'));
    await assert.rejects(second, /b left/);
    assert.equal(job.abandoned.aborted, true);
    assert.ok(job.abandoned.reason instanceof JobAbandonedError);
    finish('done');
  });
});

