// The steady load is an open loop: requests leave on schedule whatever the server does, and a
// stalled server costs every request due during the stall its wait.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { percentile, steadyLoad, summarize, type Sample } from './steady-load.ts';

describe('percentile', () => {
  it('is the nearest rank of sorted values', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(values, 0.5), 50);
    assert.equal(percentile(values, 0.99), 99);
    assert.equal(percentile([7], 0.99), 7);
    assert.ok(Number.isNaN(percentile([], 0.5)));
  });
});

describe('summarize', () => {
  const sample = (target: string, dueAt: number, latency: number, status = 200): Sample => ({ target, dueAt, endedAt: dueAt + latency, status, bytes: 1 });
  it('takes one target within the window, and counts failures', () => {
    const samples = [sample('a', 0, 5), sample('a', 10, 50, 500), sample('a', 20, 7), sample('b', 10, 1000), sample('a', 30, 9)];
    const s = summarize(samples, 'a', 10, 30);
    assert.equal(s.requests, 2);
    assert.equal(s.failed, 1);
    assert.equal(s.p50Ms, 7);
    assert.equal(s.p99Ms, 50);
    assert.equal(s.firstFailure, 'status 500');
  });
});

describe('steadyLoad', () => {
  let server: http.Server;
  let url = '';
  let stallUntil = 0;
  let answered = 0;
  before(async () => {
    server = http.createServer((_req, res) => {
      const wait = Math.max(0, stallUntil - performance.now());
      setTimeout(() => {
        answered++;
        res.end('ok');
      }, wait);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('sends at the rate asked, and stops when told', async () => {
    answered = 0;
    const samples = await steadyLoad([{ name: 't', url, perSecond: 50 }], { maxSeconds: 10, until: new Promise((r) => setTimeout(r, 1000)) });
    assert.equal(samples.length, answered);
    assert.ok(samples.length > 1);
    // Due every 20 ms from the first, whenever the timers actually fired.
    samples.forEach((s, i) => assert.ok(Math.abs(s.dueAt - samples[0]!.dueAt - i * 20) < 1e-6, `request ${i} due on schedule`));
    assert.ok(samples.every((s) => s.status === 200 && s.bytes === 2 && s.error === undefined));
  });

  it('counts a stall against every request due during it, from when it was due', async () => {
    // One connection, and the server holds every answer until a second from now: the requests
    // due meanwhile still leave on schedule (queued for the connection), each one's latency
    // the whole wait from its due time to the stall's end, not the last moment of it.
    stallUntil = performance.now() + 1000;
    const samples = await steadyLoad([{ name: 't', url, perSecond: 20 }], { maxSeconds: 1.5, connections: 1 });
    samples.forEach((s, i) => assert.ok(Math.abs(s.dueAt - samples[0]!.dueAt - i * 50) < 1e-6, `request ${i} due on schedule`));
    const dueDuringStall = samples.filter((s) => s.dueAt < stallUntil);
    assert.ok(dueDuringStall.length >= 5, `${dueDuringStall.length} requests were due during the stall`);
    for (const s of dueDuringStall) assert.ok(s.endedAt - s.dueAt >= stallUntil - s.dueAt - 1, 'its latency covers the stall from its due time');
  });

  it('runs its thread at the nice value asked for while it loads, and gives the old one back', async () => {
    const before = os.getPriority(0);
    let during = NaN;
    const probe = setInterval(() => (during = os.getPriority(0)), 50);
    try {
      await steadyLoad([{ name: 't', url, perSecond: 20 }], { maxSeconds: 0.5, nice: before + 3 });
    } finally {
      clearInterval(probe);
    }
    assert.equal(during, before + 3);
    assert.equal(os.getPriority(0), before);
  });

  it('refuses an address off loopback', async () => {
    await assert.rejects(steadyLoad([{ name: 't', url: 'http://192.0.2.1:80/', perSecond: 1 }], { maxSeconds: 1 }), /loopback/);
  });
});
