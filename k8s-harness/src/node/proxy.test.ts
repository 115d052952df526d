import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { freePort } from '@nixery/test-support';
import { ServiceProxy } from './proxy.ts';
import type { Listener } from './services.ts';

/** Connects, sends `hello`, returns what came back (or the error code). */
function exchange(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const socket = net.connect({ host, port }, () => socket.end('hello'));
    socket.on('data', (c: Buffer) => (data += c.toString()));
    socket.on('close', () => resolve(data));
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

describe('service proxy', () => {
  const backendIP = '127.0.0.1';
  let backend: net.Server;
  let backendPort: number;
  let proxy: ServiceProxy;
  let backends: Array<{ ip: string; port: number }> = [];
  let listener: Listener;

  before(async () => {
    backend = net.createServer((s) => s.on('data', (c: Buffer) => s.end(`echo ${c.toString()}`)));
    await new Promise<void>((r) => backend.listen(0, backendIP, () => r()));
    backendPort = (backend.address() as net.AddressInfo).port;
    proxy = new ServiceProxy(() => backends, () => {});
    const port = await freePort('127.0.0.1');
    listener = { key: `127.0.0.1:${port}`, ip: '127.0.0.1', port, namespace: 'ns', service: 'echo', servicePort: { port } };
    await proxy.sync([listener]);
  });
  after(async () => {
    await proxy.stop();
    await new Promise((r) => backend.close(r));
  });

  it('forwards a connection to a ready endpoint, both ways', async () => {
    backends = [{ ip: backendIP, port: backendPort }];
    assert.equal(await exchange(listener.ip, listener.port), 'echo hello');
  });
  it('tries the next endpoint when one refuses', async () => {
    const closed = await freePort(backendIP);
    backends = [{ ip: backendIP, port: closed }, { ip: backendIP, port: backendPort }];
    assert.equal(await exchange(listener.ip, listener.port), 'echo hello');
    assert.equal(await exchange(listener.ip, listener.port), 'echo hello');
  });
  it('resets connections while no endpoint is ready', async () => {
    backends = [];
    assert.equal(await exchange(listener.ip, listener.port), 'ECONNRESET');
  });
  it('closes listeners of Services that are gone', async () => {
    await proxy.sync([]);
    assert.deepEqual(proxy.listening(), []);
    assert.equal(await exchange(listener.ip, listener.port), 'ECONNREFUSED');
  });
});
