// The registry slice end to end: `nixery serve` on the bundled package set, real Nix building,
// skopeo and umoci as independent clients, binaries from the image running in a chroot.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pullAndUnpack, runInRoot, skopeoInspect, skopeoInspectRaw } from '../support/oci-client.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('registry: pulling Nix-built images with real clients', () => {
  let registry: RegistryProcess;
  let work: string;

  before(async () => {
    registry = await startRegistry();
    work = await tempDir('nixery-e2e-pull-');
  });
  after(async () => {
    await registry?.stop();
    await fs.rm(work, { recursive: true, force: true });
  });

  it('answers the version check', async () => {
    const response = await fetch(`${registry.url}/v2/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0');
  });

  it('builds shell/hello on demand; skopeo inspects it', async () => {
    const info = await skopeoInspect(registry.host, 'shell/hello:latest');
    assert.equal(info.Architecture, 'amd64');
    assert.equal(info.Os, 'linux');
    assert.ok((info.Layers as string[]).length >= 2, 'store-path layers plus the customisation layer');
    assert.ok((info.Env as string[]).includes('SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt'));
    assert.deepEqual(info.RepoTags, ['latest'], 'tags that were served are listed');
    const config = await skopeoInspectRaw(registry.host, 'shell/hello:latest', 'config');
    assert.deepEqual((config.config as { Cmd: string[] }).Cmd, ['bash']);
  });

  it('skopeo copies it (OCI manifest), umoci unpacks it, and bin/hello runs in a chroot', async () => {
    const raw = await skopeoInspectRaw(registry.host, 'shell/hello:latest', 'manifest');
    assert.equal(raw.mediaType, OCI_MANIFEST, 'skopeo asks for OCI first');
    const rootfs = await pullAndUnpack(registry.host, 'shell/hello:latest', path.join(work, 'oci'));
    assert.equal((await runInRoot(rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
    assert.equal((await runInRoot(rootfs, ['bash', '-c', 'echo from bash'])).trim(), 'from bash');
    assert.equal((await runInRoot(rootfs, ['/usr/bin/env', 'sh', '-c', 'echo env works'])).trim(), 'env works');
    const tmp = await fs.stat(path.join(rootfs, 'tmp'));
    assert.equal(tmp.mode & 0o7777, 0o1777);
    await fs.access(path.join(rootfs, 'etc/ssl/certs/ca-bundle.crt'));
    await fs.access(path.join(rootfs, 'etc/services'));
  });

  it('serves Docker schema 2 by default, and skopeo pulls that manifest by digest', async () => {
    const response = await fetch(`${registry.url}/v2/shell/hello/manifests/latest`, { headers: { Accept: DOCKER_MANIFEST } });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), DOCKER_MANIFEST);
    const body = Buffer.from(await response.arrayBuffer());
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    assert.equal(response.headers.get('docker-content-digest'), digest);
    const noAccept = await fetch(`${registry.url}/v2/shell/hello/manifests/latest`);
    assert.equal(noAccept.headers.get('content-type'), DOCKER_MANIFEST);

    const raw = await skopeoInspectRaw(registry.host, `shell/hello@${digest}`, 'manifest');
    assert.equal(raw.mediaType, DOCKER_MANIFEST);
    const rootfs = await pullAndUnpack(registry.host, `shell/hello@${digest}`, path.join(work, 'docker'));
    assert.equal((await runInRoot(rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
  });

  it('HEAD and GET agree on digest, type and length, for both formats', async () => {
    for (const accept of [DOCKER_MANIFEST, OCI_MANIFEST]) {
      const url = `${registry.url}/v2/hello/manifests/latest`;
      const head = await fetch(url, { method: 'HEAD', headers: { Accept: accept } });
      const get = await fetch(url, { headers: { Accept: accept } });
      const body = Buffer.from(await get.arrayBuffer());
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('docker-content-digest'), get.headers.get('docker-content-digest'));
      assert.equal(head.headers.get('content-type'), accept);
      assert.equal(Number(head.headers.get('content-length')), body.length);
      const byDigest = await fetch(`${registry.url}/v2/hello/manifests/${get.headers.get('docker-content-digest')}`);
      assert.deepEqual(Buffer.from(await byDigest.arrayBuffer()), body);
      assert.equal(byDigest.headers.get('content-type'), accept);
    }
  });

  it('gives the same image for the same packages in any order', async () => {
    const a = await fetch(`${registry.url}/v2/alpha/beta/manifests/latest`, { method: 'HEAD' });
    const b = await fetch(`${registry.url}/v2/beta/alpha/manifests/latest`, { method: 'HEAD' });
    assert.equal(a.status, 200);
    assert.equal(a.headers.get('docker-content-digest'), b.headers.get('docker-content-digest'));
  });

  it('serves blobs whole and by Range, with matching digest headers', async () => {
    const manifest = (await (await fetch(`${registry.url}/v2/hello/manifests/latest`)).json()) as { layers: { digest: string; size: number }[] };
    const layer = manifest.layers[0]!;
    const url = `${registry.url}/v2/hello/blobs/${layer.digest}`;
    const whole = Buffer.from(await (await fetch(url)).arrayBuffer());
    assert.equal(whole.length, layer.size);
    assert.equal(`sha256:${createHash('sha256').update(whole).digest('hex')}`, layer.digest);

    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get('content-length')), layer.size);
    assert.equal(head.headers.get('docker-content-digest'), layer.digest);

    const partial = await fetch(url, { headers: { Range: 'bytes=10-109' } });
    assert.equal(partial.status, 206);
    assert.equal(partial.headers.get('content-range'), `bytes 10-109/${layer.size}`);
    assert.deepEqual(Buffer.from(await partial.arrayBuffer()), whole.subarray(10, 110));

    const beyond = await fetch(url, { headers: { Range: `bytes=${layer.size + 10}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${layer.size}`);
  });

  it('answers missing packages with MANIFEST_UNKNOWN naming every one of them', async () => {
    const response = await fetch(`${registry.url}/v2/hello/nosuchpkg/alsomissing/manifests/latest`);
    assert.equal(response.status, 404);
    assert.match(response.headers.get('content-type') ?? '', /application\/json/);
    const body = (await response.json()) as { errors: { code: string; message: string; detail: { packages: string[] } }[] };
    assert.equal(body.errors[0]!.code, 'MANIFEST_UNKNOWN');
    assert.deepEqual(body.errors[0]!.detail.packages, ['alsomissing', 'nosuchpkg']);
    assert.match(body.errors[0]!.message, /alsomissing, nosuchpkg/);

    const page = await (await fetch(`${registry.url}/`)).text();
    assert.match(page, /nosuchpkg/, 'the index page lists recent build errors');
  });

  it('keeps serving after a package fails to build, and says which one', async () => {
    const response = await fetch(`${registry.url}/v2/hello/broken/manifests/latest`);
    assert.equal(response.status, 500);
    const body = (await response.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]!.code, 'UNKNOWN');
    assert.match(body.errors[0]!.message, /broken/);
    assert.equal((await fetch(`${registry.url}/v2/`)).status, 200);
    assert.match(registry.logs(), /this package fails to build on purpose/, "Nix's log tail is in the server log");
  });

  it('answers malformed requests with the spec error codes', async () => {
    const cases: [string, RequestInit, number, string][] = [
      ['/v2/Bad..Name/manifests/latest', {}, 400, 'NAME_INVALID'],
      ['/v2/hello/arm64/manifests/latest', {}, 400, 'NAME_INVALID'],
      // A tag no manifest can have names no manifest: the spec's 404, never a 500 from storage
      // (fetch normalises `..` away; hostile-requests.test.ts sends it as it is).
      ['/v2/hello/manifests/-bad-tag', {}, 404, 'MANIFEST_UNKNOWN'],
      [`/v2/hello/manifests/${'a'.repeat(129)}`, {}, 404, 'MANIFEST_UNKNOWN'],
      ['/v2/hello/manifests/a+b', {}, 404, 'MANIFEST_UNKNOWN'],
      ['/v2/hello/manifests/a%zz', {}, 404, 'MANIFEST_UNKNOWN'],
      ['/v2/a%zz/manifests/latest', {}, 400, 'NAME_INVALID'],
      ['/v2/hello/blobs/sha256:1234', {}, 400, 'DIGEST_INVALID'],
      ['/v2/hello/manifests/sha256:xyz', {}, 400, 'DIGEST_INVALID'],
      [`/v2/hello/blobs/sha256:${'0'.repeat(64)}`, {}, 404, 'BLOB_UNKNOWN'],
      [`/v2/hello/manifests/sha256:${'0'.repeat(64)}`, {}, 404, 'MANIFEST_UNKNOWN'],
      // This registry has no push token: pushing is disabled.
      ['/v2/hello/blobs/uploads/', { method: 'POST' }, 405, 'UNSUPPORTED'],
      ['/v2/hello/manifests/latest', { method: 'PUT', body: '{}' }, 405, 'UNSUPPORTED'],
    ];
    for (const [url, init, status, code] of cases) {
      const response = await fetch(registry.url + url, init);
      assert.equal(response.status, status, url);
      const body = (await response.json()) as { errors: { code: string }[] };
      assert.equal(body.errors[0]!.code, code, url);
    }
  });

  it('exposes health and Prometheus metrics for requests, builds and bytes', async () => {
    assert.equal((await fetch(`${registry.url}/healthz`)).status, 200);
    const metrics = await (await fetch(`${registry.url}/metrics`)).text();
    assert.match(metrics, /nixery_builds_total\{result="success"\} [1-9]/);
    assert.match(metrics, /nixery_builds_total\{result="not_found"\} [1-9]/);
    assert.match(metrics, /nixery_builds_total\{result="nix_failure"\} [1-9]/);
    assert.match(metrics, /nixery_http_requests_total\{route="\/v2\/:name\/manifests",method="GET",status="200"\} [1-9]/);
    assert.match(metrics, /nixery_served_bytes_total\{kind="blob"\} [1-9]/);
    assert.match(metrics, /nixery_build_duration_seconds_count\{result="success"\} [1-9]/);
  });

  it('logs one JSON line per request', () => {
    const lines = registry.logs().split('\n').filter((l) => l.includes('"msg":"request"'));
    assert.ok(lines.length > 5);
    for (const line of lines) {
      const entry = JSON.parse(line) as { method: string; status: string; durationMs: number };
      assert.equal(typeof entry.method, 'string');
      assert.equal(typeof entry.durationMs, 'number');
    }
  });
});
