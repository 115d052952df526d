// Reloading the serving certificate from its files: a changed valid pair goes into service, a
// changed broken one is logged once and the pair in use kept; and, on a real HTTPS server, a
// reloaded pair reaches new connections while one already open goes on with its own.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { eventually, issueCertificate, makeCertificateAuthority, within, type CertificateAuthority, type ServingCertificate } from '@nixery/test-support';
import type { TlsPair } from '../config/tls-pair.ts';
import { createLogger, silentLogger } from '../log/logger.ts';
import { createMetrics } from '../metrics/metrics.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { createHttpsServer } from './connections.ts';
import { TlsFileWatcher } from './tls-files.ts';

const dirs = tempDirs('nixery-tls-files-');
let ca: CertificateAuthority;
/** Three certificates for the same host: `renewed` keeps `first`'s key, `rekeyed` has its own. */
let first: ServingCertificate;
let renewed: ServingCertificate;
let rekeyed: ServingCertificate;

before(async () => {
  const dir = await dirs();
  ca = await makeCertificateAuthority(dir);
  first = await issueCertificate(ca, dir, 'first', { hosts: ['127.0.0.1'] });
  renewed = await issueCertificate(ca, dir, 'renewed', { hosts: ['127.0.0.1'], keyFile: first.keyFile });
  rekeyed = await issueCertificate(ca, dir, 'rekeyed', { hosts: ['127.0.0.1'] });
});

/** The files a registry is pointed at, holding `first`; a watcher on them that records what it does. */
async function watched() {
  const dir = await dirs();
  const files = { certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') };
  await write(files, first);
  const applied: TlsPair[] = [];
  const logs: { level: string; msg: string; [field: string]: unknown }[] = [];
  let refuseApply = false;
  const watcher = new TlsFileWatcher({
    files,
    current: { cert: Buffer.from(first.cert), key: Buffer.from(first.key) },
    apply: (pair) => {
      if (refuseApply) throw new Error('the server refused it');
      applied.push(pair);
    },
    log: createLogger({ level: 'debug', write: (line) => logs.push(JSON.parse(line)) }),
  });
  return { files, watcher, applied, logs, refuseApplying: () => (refuseApply = true) };
}

async function write(files: { certFile: string; keyFile: string }, pair: { cert: string; key: string }) {
  await fs.writeFile(files.certFile, pair.cert);
  await fs.writeFile(files.keyFile, pair.key);
}

describe('the TLS files, watched', () => {
  it('leaves the pair alone while the files hold it', async () => {
    const { watcher, applied, logs } = await watched();
    assert.equal(await watcher.check(), 'unchanged');
    assert.equal(await watcher.check(), 'unchanged');
    assert.deepEqual(applied, []);
    assert.deepEqual(logs, []);
  });

  it('puts a renewed certificate into service, and says which', async () => {
    const { files, watcher, applied, logs } = await watched();
    await fs.writeFile(files.certFile, renewed.cert);
    assert.equal(await watcher.check(), 'reloaded');
    assert.equal(applied.length, 1);
    assert.equal(applied[0]!.cert.toString(), renewed.cert);
    assert.equal(applied[0]!.summary.fingerprint256, renewed.fingerprint256);
    assert.equal(logs.length, 1);
    assert.equal(logs[0]!.level, 'info');
    assert.equal((logs[0]!.certificate as { fingerprint256: string }).fingerprint256, renewed.fingerprint256);
    assert.equal(await watcher.check(), 'unchanged', 'once in service, the pair is the current one');
  });

  it('keeps the current pair while a new certificate sits beside the old key, logging it once, and takes the pair once the key follows', async () => {
    const { files, watcher, applied, logs } = await watched();
    await fs.writeFile(files.certFile, rekeyed.cert);
    assert.equal(await watcher.check(), 'refused');
    assert.equal(await watcher.check(), 'refused');
    assert.equal(applied.length, 0);
    assert.equal(logs.length, 1, 'logged once, not at every poll');
    assert.equal(logs[0]!.level, 'warn');
    assert.match(logs[0]!.msg, /keeping the current certificate/);
    assert.match(String(logs[0]!.error), /is not the key of the certificate/);
    assert.equal(logs[0]!.keyFile, files.keyFile);
    assert.ok(!JSON.stringify(logs).includes('PRIVATE KEY'), 'no key in the log');

    await fs.writeFile(files.keyFile, rekeyed.key);
    assert.equal(await watcher.check(), 'reloaded');
    assert.equal(applied[0]!.summary.fingerprint256, rekeyed.fingerprint256);
  });

  it('keeps the current pair when the files are gone or half written, and logs each problem once', async () => {
    const { files, watcher, applied, logs } = await watched();
    await fs.rm(files.certFile);
    assert.equal(await watcher.check(), 'refused');
    assert.equal(await watcher.check(), 'refused');
    assert.match(String(logs.at(-1)!.error), /cannot read .*tls\.crt/);
    await fs.writeFile(files.certFile, renewed.cert.slice(0, renewed.cert.length / 2));
    assert.equal(await watcher.check(), 'refused');
    assert.match(String(logs.at(-1)!.error), /holds no PEM certificate/);
    assert.equal(logs.length, 2);
    // Back to what is in service: nothing to do, nothing to say.
    await fs.writeFile(files.certFile, first.cert);
    assert.equal(await watcher.check(), 'unchanged');
    assert.deepEqual(applied, []);
    assert.equal(logs.length, 2);
  });

  it('keeps the current pair when the server refuses the new one', async () => {
    const { files, watcher, logs, refuseApplying } = await watched();
    refuseApplying();
    await fs.writeFile(files.certFile, renewed.cert);
    assert.equal(await watcher.check(), 'refused');
    assert.match(String(logs[0]!.error), /the server refused it/);
  });

  it('polls on its own once started, and no more once stopped', async () => {
    const dir = await dirs();
    const files = { certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') };
    await write(files, first);
    const applied: string[] = [];
    const watcher = new TlsFileWatcher({
      files,
      current: { cert: Buffer.from(first.cert), key: Buffer.from(first.key) },
      apply: (pair) => applied.push(pair.summary.fingerprint256),
      log: silentLogger,
      intervalMs: 50,
    }).start();
    try {
      await fs.writeFile(files.certFile, renewed.cert);
      await eventually('the renewed certificate applied', () => (applied.length === 1 ? true : undefined), 5_000, 20);
    } finally {
      watcher.stop();
    }
    await write(files, rekeyed);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(applied, [renewed.fingerprint256]);
  });
});

describe('a reloaded pair on a real HTTPS server', () => {
  const servers: import('node:https').Server[] = [];
  const sockets: tls.TLSSocket[] = [];
  after(async () => {
    for (const socket of sockets) socket.destroy();
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  /** A TLS connection trusting the CA; resolves once the handshake is done. */
  async function open(port: number): Promise<tls.TLSSocket> {
    const socket = tls.connect({ port, host: '127.0.0.1', ca: ca.cert });
    sockets.push(socket);
    await within(5_000, 'the handshake', new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)));
    return socket;
  }

  /** One request on a kept-alive connection; resolves with the body. */
  async function get(socket: tls.TLSSocket): Promise<string> {
    const answer = new Promise<string>((resolve) => {
      let text = '';
      const onData = (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (/\r\n\r\nok$/.test(text)) {
          socket.off('data', onData);
          resolve(text);
        }
      };
      socket.on('data', onData);
    });
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    return within(5_000, 'the answer', answer);
  }

  it('serves the new certificate to new connections while an open keep-alive connection goes on', async () => {
    const dir = await dirs();
    const files = { certFile: path.join(dir, 'tls.crt'), keyFile: path.join(dir, 'tls.key') };
    await write(files, first);
    const server = createHttpsServer(
      (_req, res) => res.end('ok'),
      { cert: Buffer.from(first.cert), key: Buffer.from(first.key) },
      {
        limits: { headersTimeoutSeconds: 30, receiveTimeoutSeconds: 60, sendStallTimeoutSeconds: 30, keepAliveTimeoutSeconds: 60, maxConnections: 100 },
        metrics: createMetrics({ defaultMetrics: false }),
        log: silentLogger,
      },
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const watcher = new TlsFileWatcher({
      files,
      current: { cert: Buffer.from(first.cert), key: Buffer.from(first.key) },
      apply: (pair) => server.setSecureContext({ cert: pair.cert, key: pair.key }),
      log: silentLogger,
    });

    const before = await open(port);
    assert.equal(before.getPeerCertificate().fingerprint256, first.fingerprint256);
    assert.match(await get(before), /^HTTP\/1\.1 200 /);

    await write(files, rekeyed);
    assert.equal(await watcher.check(), 'reloaded');
    const after = await open(port);
    assert.equal(after.getPeerCertificate().fingerprint256, rekeyed.fingerprint256, 'a new connection gets the new certificate');
    assert.match(await get(after), /^HTTP\/1\.1 200 /);

    assert.match(await get(before), /^HTTP\/1\.1 200 /, 'the connection opened before goes on');
    assert.equal(before.getPeerCertificate().fingerprint256, first.fingerprint256);
  });
});
