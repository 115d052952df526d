import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { probeOnce, resolvePort, type ProbeTarget } from './probes.ts';

describe('probe attempts', () => {
  let server: http.Server;
  let target: ProbeTarget;
  before(async () => {
    server = http.createServer((req, res) => {
      res.statusCode = req.url === '/ok' ? 200 : req.url === '/moved' ? 302 : 503;
      res.end(req.headers['x-probe'] ?? '');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    target = { podIP: '127.0.0.1', ports: [{ name: 'http', containerPort: port }], pid: process.pid, env: {} };
  });
  after(async () => {
    await new Promise((r) => server.close(r));
  });

  it('httpGet succeeds for 200–399 at the pod IP and a named port', async () => {
    assert.deepEqual(await probeOnce({ httpGet: { path: '/ok', port: 'http' } }, target), { ok: true, message: '' });
    assert.equal((await probeOnce({ httpGet: { path: '/moved', port: 'http' } }, target)).ok, true);
  });
  it('httpGet fails with the status code otherwise', async () => {
    assert.deepEqual(await probeOnce({ httpGet: { path: '/down', port: 'http' } }, target), { ok: false, message: 'HTTP probe failed with statuscode: 503' });
  });
  it('tcpSocket succeeds when something listens and fails when nothing does', async () => {
    assert.equal((await probeOnce({ tcpSocket: { port: 'http' } }, target)).ok, true);
    const refused = await probeOnce({ tcpSocket: { port: 1 } }, target);
    assert.equal(refused.ok, false);
    assert.match(refused.message, /^dial tcp 127\.0\.0\.1:1: connect ECONNREFUSED/);
  });
  it('resolves ports by number, numeric string or container port name', () => {
    assert.equal(resolvePort(80, []), 80);
    assert.equal(resolvePort('8080', []), 8080);
    assert.equal(resolvePort('http', [{ name: 'http', containerPort: 9000 }]), 9000);
    assert.equal(resolvePort('nope', []), undefined);
  });
});
