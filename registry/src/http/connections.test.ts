// The HTTP server's limits, on real sockets: what is cut (a request that does not arrive, a
// response nobody takes, an idle keep-alive connection, a connection beyond the cap), when,
// and what is not (an answer that takes long to be ready, a slow download that moves); and the
// same over TLS, where a handshake that does not end counts as headers that do not arrive.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RequestListener, Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { ConnectionLimits } from '../config/config.ts';
import { silentLogger } from '../log/logger.ts';
import { createMetrics } from '../metrics/metrics.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { eventually, issueCertificate, makeCertificateAuthority, within, type CertificateAuthority, type ServingCertificate } from '@nixery/test-support';
import { createHttpServer, createHttpsServer, REFUSED_LINGER_MS } from './connections.ts';

const MiB = 1024 * 1024;
const BODY = Buffer.alloc(64 * MiB, 7);
/** A check runs a quarter of a timeout after it expires at most; the rest is this machine's slack. */
const MARGIN_MS = 1_500;

const servers: Server[] = [];
const clients: net.Socket[] = [];
after(async () => {
  for (const client of clients) client.destroy();
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** Over TLS, the serving certificate and the CA a client trusts it by; plain HTTP without. */
interface Tls {
  ca: CertificateAuthority;
  serving: ServingCertificate;
}

async function start(limits: Partial<ConnectionLimits>, overTls?: Tls) {
  const metrics = createMetrics({ defaultMetrics: false });
  const handler: RequestListener = (req, res) => {
    if (req.url === '/big') {
      // One write: its callback comes only when the kernel has all 64 MiB, however the client reads.
      res.writeHead(200, { 'content-length': BODY.length });
      res.end(BODY);
    } else if (req.url?.startsWith('/wait/')) {
      const ms = Number(req.url.slice('/wait/'.length));
      setTimeout(() => res.end('ready'), ms);
    } else {
      res.end('ok');
    }
  };
  const deps = {
    limits: { headersTimeoutSeconds: 30, receiveTimeoutSeconds: 60, sendStallTimeoutSeconds: 30, keepAliveTimeoutSeconds: 30, maxConnections: 100, ...limits },
    metrics,
    log: silentLogger,
  };
  const server = overTls
    ? createHttpsServer(handler, { cert: Buffer.from(overTls.serving.cert), key: Buffer.from(overTls.serving.key) }, deps)
    : createHttpServer(handler, deps);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const closed = async (reason: string) => (await metrics.connectionsClosed.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  const open = async () => (await metrics.openConnections.get()).values[0]?.value ?? 0;
  return { server, port, metrics, closed, open };
}

/** A raw connection (over TLS, trusting `ca`): what it received, and when it closed (ms after it opened). */
function connect(port: number, ca?: CertificateAuthority) {
  const socket = ca ? tls.connect({ port, host: '127.0.0.1', ca: ca.cert }) : net.connect(port, '127.0.0.1');
  clients.push(socket);
  const opened = performance.now();
  let received = Buffer.alloc(0);
  let bytes = 0;
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (received.length < 4096) received = Buffer.concat([received, chunk]);
  });
  socket.on('error', () => {});
  const closedAfter = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - opened)));
  return { socket, closedAfter, text: () => received.toString('latin1'), bytes: () => bytes };
}

/** Polls every 10 ms until `condition` holds, failing after `ms`. */
function until(what: string, condition: () => Promise<boolean>, ms: number): Promise<true> {
  return eventually(what, async () => ((await condition()) ? true : undefined), ms, 10);
}

describe('connection limits', () => {
  it('answers 408 and closes a connection whose headers do not arrive within the headers timeout', async () => {
    const { port } = await start({ headersTimeoutSeconds: 1 });
    const client = connect(port);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => client.socket.write('X-A: b\r\n'), 100);
    try {
      const ms = await within(1_000 + MARGIN_MS, 'closed', client.closedAfter);
      assert.ok(ms >= 900, `closed after ${ms} ms, not before the timeout`);
      assert.match(client.text(), /^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(trickle);
    }
  });

  it('closes a refused connection gracefully: a client that goes on sending and reads late still gets its 408', async () => {
    // Node's own close would reset the connection at the client's next bytes, and a client whose
    // write fails first loses the answer it has not read yet (an e2e attack test once saw '').
    const { port } = await start({ headersTimeoutSeconds: 1 });
    const client = connect(port);
    const errors: string[] = [];
    client.socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
    client.socket.pause();
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => client.socket.writable && client.socket.write('X-A: b\r\n'), 20);
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000 + MARGIN_MS));
      clearInterval(trickle);
      client.socket.resume();
      await within(REFUSED_LINGER_MS, 'closed', client.closedAfter);
      assert.match(client.text(), /^HTTP\/1\.1 408 Request Timeout\r\nConnection: close\r\n\r\n$/);
      assert.deepEqual(errors, [], 'a FIN, not a reset');
    } finally {
      clearInterval(trickle);
    }
  });

  it('answers a malformed request 400 and closes it the same way', async () => {
    const { port } = await start({});
    const client = connect(port);
    client.socket.write('NOT HTTP AT ALL\r\n\r\n');
    await within(REFUSED_LINGER_MS, 'closed', client.closedAfter);
    assert.match(client.text(), /^HTTP\/1\.1 400 Bad Request\r\n/);
  });

  it('closes a request whose body does not arrive within the receive timeout', async () => {
    const { port } = await start({ headersTimeoutSeconds: 1, receiveTimeoutSeconds: 2 });
    const client = connect(port);
    client.socket.write('PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n');
    const trickle = setInterval(() => client.socket.write('x'), 100);
    try {
      const ms = await within(2_000 + MARGIN_MS, 'closed', client.closedAfter);
      assert.ok(ms >= 1_900, `closed after ${ms} ms, not before the timeout`);
    } finally {
      clearInterval(trickle);
    }
  });

  it('cuts a response the client takes no bytes of for the send-stall timeout', async () => {
    const { port, closed, open } = await start({ sendStallTimeoutSeconds: 1 });
    const client = connect(port);
    // A paused client reads nothing, its end of the connection closing included: the server's count tells.
    client.socket.pause();
    client.socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    const sent = performance.now();
    await until('the send-stall cut', async () => (await closed('send_stall')) === 1, 1_000 + MARGIN_MS);
    const ms = performance.now() - sent;
    assert.ok(ms >= 1_000, `cut after ${ms} ms, not before the timeout`);
    await until('the server to let go of the connection', async () => (await open()) === 0, 1_000);
  });

  it('lets a slow download go on for as long as it moves, though its one write takes several timeouts', async () => {
    const { port, closed } = await start({ sendStallTimeoutSeconds: 2 });
    const client = connect(port);
    // 8 MiB/s: 64 MiB take 8 s, four timeouts, and the write completes only at the end.
    const rate = 8 * MiB;
    const started = performance.now();
    client.socket.on('data', () => {
      const ahead = client.bytes() / rate - (performance.now() - started) / 1000;
      if (ahead > 0) {
        client.socket.pause();
        setTimeout(() => client.socket.resume(), ahead * 1000);
      }
    });
    client.socket.write('GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await within(30_000, 'download ended', client.closedAfter);
    assert.ok(client.bytes() > BODY.length, `received ${client.bytes()} bytes, the whole body and its headers`);
    assert.ok(performance.now() - started > 6_000, 'it did take several timeouts');
    assert.equal(await closed('send_stall'), 0);
  });

  it('keeps a connection whose answer takes longer than every timeout to be ready', async () => {
    const { port } = await start({ headersTimeoutSeconds: 1, receiveTimeoutSeconds: 1, sendStallTimeoutSeconds: 1, keepAliveTimeoutSeconds: 1 });
    const client = connect(port);
    // A first request, so that the second waits on a kept-alive connection.
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 300));
    client.socket.write('GET /wait/3500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const ms = await within(10_000, 'closed', client.closedAfter);
    assert.ok(ms >= 3_500, `closed after ${ms} ms`);
    assert.match(client.text(), /\r\n\r\nok/);
    assert.match(client.text(), /\r\n\r\nready$/);
  });

  it('closes an idle keep-alive connection after the keep-alive timeout', async () => {
    const { port } = await start({ keepAliveTimeoutSeconds: 1 });
    const client = connect(port);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    // Node keeps the connection a second past the timeout it advertises (keepAliveTimeoutBuffer).
    const ms = await within(1_000 + 1_000 + MARGIN_MS, 'closed', client.closedAfter);
    assert.ok(ms >= 900, `closed after ${ms} ms`);
    assert.match(client.text(), /\r\n\r\nok$/);
  });

  it('closes connections beyond the cap as they arrive, and counts them', async () => {
    const { port, closed, open } = await start({ maxConnections: 3 });
    const held = [connect(port), connect(port), connect(port)];
    await until('three connections open', async () => (await open()) === 3, 5_000);
    const refused = connect(port);
    await within(5_000, 'refused connection closed', refused.closedAfter);
    assert.equal(await closed('max_connections'), 1);
    held[0]!.socket.destroy();
    await held[0]!.closedAfter;
    await until('one connection closed', async () => (await open()) === 2, 5_000);
    const admitted = connect(port);
    admitted.socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await within(5_000, 'answered', admitted.closedAfter);
    assert.match(admitted.text(), /\r\n\r\nok$/);
  });
});

describe('connection limits over TLS', () => {
  const dirs = tempDirs('nixery-connections-tls-');
  let creds: Tls;
  before(async () => {
    const dir = await dirs();
    const ca = await makeCertificateAuthority(dir);
    creds = { ca, serving: await issueCertificate(ca, dir, 'server', { hosts: ['127.0.0.1'] }) };
  });

  it('serves HTTPS with the certificate it is given', async () => {
    const { port } = await start({}, creds);
    const client = connect(port, creds.ca);
    const socket = client.socket as tls.TLSSocket;
    await within(5_000, 'the handshake', new Promise((resolve) => socket.once('secureConnect', resolve)));
    assert.equal(socket.getPeerCertificate().fingerprint256, creds.serving.fingerprint256);
    socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await within(5_000, 'answered', client.closedAfter);
    assert.match(client.text(), /^HTTP\/1\.1 200 [^]*\r\n\r\nok$/);
  });

  it('closes a connection whose handshake does not end within the headers timeout, however it trickles', async () => {
    const { port } = await start({ headersTimeoutSeconds: 1 }, creds);
    const client = connect(port);
    // A TLS record header announcing a long ClientHello, then a byte every 100 ms of it.
    client.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x3e, 0x80]));
    const trickle = setInterval(() => client.socket.write(Buffer.from([1])), 100);
    try {
      const ms = await within(1_000 + MARGIN_MS, 'closed', client.closedAfter);
      assert.ok(ms >= 900, `closed after ${ms} ms, not before the timeout`);
    } finally {
      clearInterval(trickle);
    }
  });

  it('answers 408 when the headers do not arrive within the headers timeout after the handshake', async () => {
    const { port } = await start({ headersTimeoutSeconds: 1 }, creds);
    const client = connect(port, creds.ca);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => client.socket.write('X-A: b\r\n'), 100);
    try {
      await within(1_000 + MARGIN_MS, 'closed', client.closedAfter);
      assert.match(client.text(), /^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(trickle);
    }
  });

  it('cuts a response the client takes no bytes of for the send-stall timeout, and lets go of it', async () => {
    const { port, closed, open } = await start({ sendStallTimeoutSeconds: 1 }, creds);
    const client = connect(port, creds.ca);
    await within(5_000, 'the handshake', new Promise((resolve) => client.socket.once('secureConnect', resolve)));
    client.socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
    client.socket.pause();
    const sent = performance.now();
    await until('the send-stall cut', async () => (await closed('send_stall')) === 1, 1_000 + MARGIN_MS);
    const ms = performance.now() - sent;
    assert.ok(ms >= 1_000, `cut after ${ms} ms, not before the timeout`);
    await until('the server to let go of the connection', async () => (await open()) === 0, 1_000);
  });

  it('lets a slow download go on for as long as it moves, the encrypted bytes counted', async () => {
    const { port, closed } = await start({ sendStallTimeoutSeconds: 2 }, creds);
    const client = connect(port, creds.ca);
    const rate = 8 * MiB;
    const started = performance.now();
    client.socket.on('data', () => {
      const ahead = client.bytes() / rate - (performance.now() - started) / 1000;
      if (ahead > 0) {
        client.socket.pause();
        setTimeout(() => client.socket.resume(), ahead * 1000);
      }
    });
    client.socket.write('GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await within(30_000, 'download ended', client.closedAfter);
    assert.ok(client.bytes() > BODY.length, `received ${client.bytes()} bytes, the whole body and its headers`);
    assert.ok(performance.now() - started > 6_000, 'it did take several timeouts');
    assert.equal(await closed('send_stall'), 0);
  });

  it('closes connections beyond the cap as they arrive, handshake or not', async () => {
    const { port, closed, open } = await start({ maxConnections: 2 }, creds);
    const held = [connect(port, creds.ca), connect(port)];
    await until('two connections open', async () => (await open()) === 2, 5_000);
    const refused = connect(port, creds.ca);
    refused.socket.on('error', () => {});
    await within(5_000, 'refused connection closed', refused.closedAfter);
    assert.equal(await closed('max_connections'), 1);
    held[1]!.socket.destroy();
    await until('one connection closed', async () => (await open()) === 1, 5_000);
    const admitted = connect(port, creds.ca);
    admitted.socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await within(5_000, 'answered', admitted.closedAfter);
    assert.match(admitted.text(), /\r\n\r\nok$/);
  });
});
