import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { silentLogger } from '../log/logger.ts';
import { parseHostPort, startForwarder } from './tcp-forward.ts';

describe('TCP forwarder', () => {
  it('parses host:port, including bracketed IPv6', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:5000'), { host: '127.0.0.1', port: 5000 });
    assert.deepEqual(parseHostPort('nixery.ns.svc.cluster.local:5000'), { host: 'nixery.ns.svc.cluster.local', port: 5000 });
    assert.deepEqual(parseHostPort('[::1]:80'), { host: '::1', port: 80 });
    for (const bad of ['nohost', ':80', 'a:0', 'a:70000', 'a b:1']) assert.throws(() => parseHostPort(bad), /expected host:port/, bad);
  });

  it('forwards bytes both ways', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const target = { host: '127.0.0.1', port: (echo.address() as net.AddressInfo).port };
    const forwarder = await startForwarder({ host: '127.0.0.1', port: 0 }, target, silentLogger);
    try {
      const port = (forwarder.address() as net.AddressInfo).port;
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.end('ping'));
        let data = '';
        socket.on('data', (c) => (data += c));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      assert.equal(reply, 'ping');
    } finally {
      forwarder.close();
      echo.close();
    }
  });
});
