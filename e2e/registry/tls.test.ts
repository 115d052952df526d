// The registry over HTTPS, with a CA and serving certificates made here by openssl: skopeo and
// containerd's ctr pull an image built on demand when told to trust the CA, and fail on the
// certificate when not; a certificate renewed on disk (in place, and by a kubelet-style `..data`
// swap with a new key) reaches new connections while an open keep-alive connection goes on, and a
// broken pair is logged and the old one kept; `nixery build --push` pushes over HTTPS with
// `--push-ca-file`; and `/metrics` is served on a port of its own, not on the registry's.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import {
  eventually,
  freePort,
  issueCertificate,
  makeCertificateAuthority,
  run,
  runOk,
  within,
  type CertificateAuthority,
  type ServingCertificate,
} from '@nixery/test-support';
import { startContainerd, stopContainerd, type Containerd } from '../support/containerd.ts';
import { nixeryBuild } from '../support/nixery-cli.ts';
import { runInRoot } from '../support/oci-client.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const TOKEN = 'e2e-tls-push-token-0123456789';
const IMAGE = 'shell/hello:latest';
/** The registry reads its files every ~2 s; a change must be served well within this. */
const RELOADED_WITHIN_MS = 15_000;
const HOSTS = ['127.0.0.1', 'localhost'];

/**
 * A Secret volume as the kubelet writes one: each file a link through `..data` to a directory of
 * the current version, and an update a new directory with `..data` swapped to it in one rename.
 */
class SecretVolume {
  private versions = 0;
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  async write(files: Record<string, string>): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    const previous = await fs.readlink(path.join(this.dir, '..data')).catch(() => undefined);
    const version = `..version_${++this.versions}`;
    await fs.mkdir(path.join(this.dir, version));
    for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(this.dir, version, name), content);
    await fs.symlink(version, path.join(this.dir, '..data_tmp'));
    await fs.rename(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    for (const name of Object.keys(files)) await fs.symlink(path.join('..data', name), this.file(name)).catch(() => {});
    if (previous) await fs.rm(path.join(this.dir, previous), { recursive: true });
  }
}

/** A TLS connection to the registry trusting `ca`, once its handshake is done. */
async function connectTls(port: number, ca: CertificateAuthority): Promise<tls.TLSSocket> {
  const socket = tls.connect({ port, host: '127.0.0.1', ca: ca.cert, servername: 'localhost' });
  await within(10_000, 'the TLS handshake', new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject)));
  return socket;
}

/** One GET on a kept-alive connection: the status and body of the answer. */
async function get(socket: tls.TLSSocket, path: string): Promise<{ status: number; body: string }> {
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = received.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (received.length < end + 4 + length) return;
      socket.off('data', onData).off('close', onClose);
      resolve({ status: Number(head.split(' ')[1]), body: received.subarray(end + 4, end + 4 + length).toString() });
    };
    const onClose = () => reject(new Error(`the connection closed before the answer to GET ${path}`));
    socket.on('data', onData).once('close', onClose);
  });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  return within(30_000, `the answer to GET ${path}`, answer);
}

/** The fingerprint of the certificate a new connection is served. */
async function servedFingerprint(port: number, ca: CertificateAuthority): Promise<string> {
  const socket = await connectTls(port, ca);
  try {
    return socket.getPeerCertificate().fingerprint256;
  } finally {
    socket.destroy();
  }
}

describe('registry: HTTPS with certificates that rotate, and /metrics on its own port', () => {
  let work: string;
  let ca: CertificateAuthority;
  let first: ServingCertificate;
  let volume: SecretVolume;
  /** A directory holding `ca.crt`, as skopeo's --cert-dir options take it. */
  let trust: string;
  let metricsPort: number;
  let registry: RegistryProcess;
  const sockets: tls.TLSSocket[] = [];

  before(async () => {
    work = await tempDir('nixery-e2e-tls-');
    ca = await makeCertificateAuthority(path.join(work, 'ca'));
    first = await issueCertificate(ca, path.join(work, 'certs'), 'first', { hosts: HOSTS });
    volume = new SecretVolume(path.join(work, 'tls'));
    await volume.write({ 'tls.crt': first.cert, 'tls.key': first.key });
    trust = path.join(work, 'trust');
    await fs.mkdir(trust);
    await fs.copyFile(ca.certFile, path.join(trust, 'ca.crt'));
    metricsPort = await freePort();
    registry = await startRegistry({
      env: {
        NIXERY_TLS_CERT_FILE: volume.file('tls.crt'),
        NIXERY_TLS_KEY_FILE: volume.file('tls.key'),
        NIXERY_PUSH_TOKEN: TOKEN,
        NIXERY_METRICS_PORT: String(metricsPort),
        // The keep-alive connection of the rotation test idles while the new certificate is picked up.
        NIXERY_KEEPALIVE_TIMEOUT: '120',
      },
    });
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await registry?.stop();
    if (registry) await fs.rm(registry.storagePath, { recursive: true, force: true });
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('skopeo pulls an image built on demand, trusting the CA; the image runs', async () => {
    assert.match(registry.url, /^https:\/\//);
    const layout = path.join(work, 'pulled', 'layout');
    const bundle = path.join(work, 'pulled', 'bundle');
    await fs.mkdir(path.dirname(layout), { recursive: true });
    await runOk('skopeo', ['copy', '--src-cert-dir', trust, `docker://${registry.host}/${IMAGE}`, `oci:${layout}:img`], { timeoutMs: 300_000 });
    await runOk('umoci', ['unpack', '--image', `${layout}:img`, bundle]);
    assert.equal((await runInRoot(path.join(bundle, 'rootfs'), ['/bin/hello'])).trim(), 'Hello, world!');
  });

  it('skopeo refuses the registry without the CA, on the certificate', async () => {
    const empty = path.join(work, 'no-trust');
    await fs.mkdir(empty, { recursive: true });
    const refused = await run('skopeo', ['inspect', '--cert-dir', empty, `docker://${registry.host}/${IMAGE}`], { timeoutMs: 120_000 });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /x509: certificate signed by unknown authority|failed to verify certificate/);
  });

  it('serves /metrics on the metrics port alone, over plain HTTP; the registry answers 404 there', async () => {
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(metrics.status, 200);
    const text = await metrics.text();
    assert.match(text, /^nixery_http_requests_total\{/m, 'the registry\'s own metrics, requests counted');
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/v2/`)).status, 404, 'the metrics port serves nothing else');
    const socket = await connectTls(registry.port, ca);
    sockets.push(socket);
    assert.equal((await get(socket, '/metrics')).status, 404);
    assert.equal((await get(socket, '/healthz')).status, 200, 'the rest of the registry is where it was');
  });

  it('serves a certificate renewed in place to new connections, while an open keep-alive connection goes on', async () => {
    const open = await connectTls(registry.port, ca);
    sockets.push(open);
    assert.equal(open.getPeerCertificate().fingerprint256, first.fingerprint256);
    assert.equal((await get(open, '/healthz')).status, 200);

    // cert-manager's renewal keeps the key; the new certificate is written over the old file.
    const renewed = await issueCertificate(ca, path.join(work, 'certs'), 'renewed', { hosts: HOSTS, keyFile: first.keyFile });
    await fs.writeFile(volume.file('tls.crt'), renewed.cert);
    await eventually('the renewed certificate served', async () => ((await servedFingerprint(registry.port, ca)) === renewed.fingerprint256 ? true : undefined), RELOADED_WITHIN_MS, 250);

    assert.equal((await get(open, '/healthz')).status, 200, 'the connection opened before the renewal still answers');
    assert.equal(open.getPeerCertificate().fingerprint256, first.fingerprint256, 'with the certificate it began with');
    assert.ok(!open.destroyed);
    const reloaded = logLines(registry).filter((l) => l.msg === 'serving a new TLS certificate');
    assert.equal(reloaded.length, 1);
    assert.equal((reloaded[0]!.certificate as { fingerprint256: string }).fingerprint256, renewed.fingerprint256);
  });

  it('keeps the certificate it serves when a Secret update brings a broken pair, says so once, and takes the next good one', async () => {
    const before = await servedFingerprint(registry.port, ca);
    const rekeyed = await issueCertificate(ca, path.join(work, 'certs'), 'rekeyed', { hosts: HOSTS });
    // A certificate with someone else's key: no pair at all.
    await volume.write({ 'tls.crt': rekeyed.cert, 'tls.key': first.key });
    const warning = await eventually(
      'the broken pair logged',
      () => logLines(registry).find((l) => l.level === 'warn' && /keeping the current certificate/.test(String(l.msg))),
      RELOADED_WITHIN_MS,
      250,
    );
    assert.match(String(warning.error), /is not the key of the certificate/);
    assert.equal(warning.certFile, volume.file('tls.crt'));
    // Several polls later: still the old certificate, and still one line about it.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    assert.equal(await servedFingerprint(registry.port, ca), before);
    assert.equal(logLines(registry).filter((l) => l.level === 'warn' && /keeping the current certificate/.test(String(l.msg))).length, 1);
    assert.ok(!registry.logs().includes('PRIVATE KEY'), 'no key in the log');

    await volume.write({ 'tls.crt': rekeyed.cert, 'tls.key': rekeyed.key });
    await eventually('the rekeyed certificate served', async () => ((await servedFingerprint(registry.port, ca)) === rekeyed.fingerprint256 ? true : undefined), RELOADED_WITHIN_MS, 250);
  });

  it('nixery build --push pushes over HTTPS trusting --push-ca-file, and fails on the certificate without it', async () => {
    const storage = await tempDir('nixery-e2e-tls-build-');
    try {
      const env = { STORAGE_PATH: storage, NIXERY_PUSH_TOKEN: TOKEN };
      const pushed = await nixeryBuild(['--packages', 'hello', '--push', `${registry.host}/toolbox:v1`, '--push-scheme', 'https', '--push-ca-file', ca.certFile], env);
      assert.equal(pushed.code, 0, pushed.stderr);
      assert.equal((pushed.json.pushed as { digest: string }).digest, pushed.json.digest);
      const { stdout } = await runOk('skopeo', ['inspect', '--cert-dir', trust, `docker://${registry.host}/toolbox:v1`], { timeoutMs: 120_000 });
      assert.equal((JSON.parse(stdout) as { Digest: string }).Digest, pushed.json.digest);

      const untrusted = await nixeryBuild(['--packages', 'hello', '--push', `${registry.host}/toolbox:v2`, '--push-scheme', 'https'], env);
      assert.equal(untrusted.code, 6, untrusted.stderr);
      const error = untrusted.json.error as { outcome: string; message: string };
      assert.equal(error.outcome, 'push_failure');
      assert.match(error.message, /certificate/);

      const misused = await nixeryBuild(['--packages', 'hello', '--push', `${registry.host}/toolbox:v3`, '--push-ca-file', ca.certFile], env);
      assert.equal(misused.code, 64, 'a CA for a plain-HTTP push is a usage error');
      assert.match((misused.json.error as { message: string }).message, /--push-ca-file needs --push-scheme https/);
    } finally {
      await fs.rm(storage, { recursive: true, force: true });
    }
  });

  describe("containerd's ctr", () => {
    let containerd: Containerd | undefined;
    before(async () => {
      containerd = await startContainerd();
    });
    after(() => stopContainerd(containerd));

    /** `ctr images pull` through the private containerd, with `hostsDir` as its --hosts-dir. */
    const pull = (hostsDir: string, reference: string) =>
      run('ctr', ['--address', containerd!.socket, 'images', 'pull', '--hosts-dir', hostsDir, `${registry.host}/${reference}`], { timeoutMs: 300_000 });

    /**
     * A hosts directory for the registry, as a node's /etc/containerd/certs.d. It needs hosts.toml:
     * without one containerd takes a loopback registry for plain HTTP (as Docker does).
     */
    async function hostsDir(name: string, ca?: string): Promise<string> {
      const dir = path.join(work, name);
      await fs.mkdir(path.join(dir, registry.host), { recursive: true });
      await fs.writeFile(
        path.join(dir, registry.host, 'hosts.toml'),
        `server = "https://${registry.host}"\n\n[host."https://${registry.host}"]\n  capabilities = ["pull", "resolve"]\n${ca ? `  ca = "${ca}"\n` : ''}`,
      );
      return dir;
    }

    it('pulls with the CA named in the registry\'s hosts.toml', async () => {
      const pulled = await pull(await hostsDir('hosts-with-ca', ca.certFile), IMAGE);
      assert.equal(pulled.code, 0, `${pulled.stderr}\n${containerd!.output().slice(-3000)}`);
      const { stdout } = await runOk('ctr', ['--address', containerd!.socket, 'images', 'list', '--quiet']);
      assert.ok(stdout.split('\n').includes(`${registry.host}/${IMAGE}`), stdout);
    });

    it('fails on the certificate without the CA', async () => {
      // The content is in containerd's store by now; resolving the tag still asks the registry.
      const refused = await pull(await hostsDir('hosts-without-ca'), IMAGE);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /x509: certificate signed by unknown authority|failed to verify certificate/);
    });
  });
});

/** The registry's JSON log lines. */
function logLines(registry: RegistryProcess): Record<string, unknown>[] {
  return registry
    .logs()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
