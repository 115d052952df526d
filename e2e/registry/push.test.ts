// Pushing, as the distribution spec defines it, with the push token (the administrator); pulls
// stay anonymous, and a pushed tag wins over reading the name as a package list.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pullAndUnpack, runInRoot } from '../support/oci-client.ts';
import { runOk } from '@nixery/test-support';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const TOKEN = 'e2e-push-token-0123456789';
const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const auth = { Authorization: `Bearer ${TOKEN}` };
/** The subject and access of a registry token (a JWT). */
const claimsOf = (jwt: string) => {
  const { sub, access } = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { sub: string; access: unknown };
  return { sub, access };
};

describe('registry: pushing with the push token', () => {
  let registry: RegistryProcess;
  let work: string;
  before(async () => {
    registry = await startRegistry({ env: { NIXERY_PUSH_TOKEN: TOKEN } });
    work = await tempDir('nixery-e2e-push-');
  });
  after(async () => {
    await registry?.stop();
    await fs.rm(work, { recursive: true, force: true });
    await fs.rm(registry.storagePath, { recursive: true, force: true });
  });

  it('skopeo pushes an image under a new name; the pushed tag is served, not built', async () => {
    const src = `docker://${registry.host}/shell/hello:latest`;
    const dest = `docker://${registry.host}/toolbox:v1`;
    await assert.rejects(
      runOk('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', src, dest]),
      /401|unauthorized|authentication required/i,
      'no token, no push',
    );
    await runOk('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--dest-registry-token', TOKEN, src, dest], {
      timeoutMs: 300_000,
    });
    // `toolbox` is not a package: only the pushed tag can answer.
    const rootfs = await pullAndUnpack(registry.host, 'toolbox:v1', path.join(work, 'toolbox'));
    assert.equal((await runInRoot(rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
    const tags = (await (await fetch(`${registry.url}/v2/toolbox/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['v1']);
  });

  it('takes a monolithic upload, verifies its digest, and keeps nothing on mismatch', async () => {
    const blob = Buffer.from('monolithic blob');
    const bad = await fetch(`${registry.url}/v2/m/blobs/uploads/?digest=${sha256('something else')}`, { method: 'POST', headers: auth, body: blob });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { errors: { code: string }[] }).errors[0]!.code, 'DIGEST_INVALID');
    assert.equal((await fetch(`${registry.url}/v2/m/blobs/${sha256('something else')}`, { method: 'HEAD' })).status, 404);

    const good = await fetch(`${registry.url}/v2/m/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', headers: auth, body: blob });
    assert.equal(good.status, 201);
    assert.equal(good.headers.get('docker-content-digest'), sha256(blob));
    assert.equal(await (await fetch(`${registry.url}${good.headers.get('location')}`)).text(), 'monolithic blob');
  });

  it('takes a chunked upload in order, rejects an out-of-order chunk with 416, and reports progress', async () => {
    const start = await fetch(`${registry.url}/v2/c/blobs/uploads/`, { method: 'POST', headers: auth });
    assert.equal(start.status, 202);
    const location = start.headers.get('location')!;
    const first = await fetch(registry.url + location, {
      method: 'PATCH',
      headers: { ...auth, 'Content-Range': '0-4', 'Content-Type': 'application/octet-stream' },
      body: 'hello',
    });
    assert.equal(first.status, 202);
    assert.equal(first.headers.get('range'), '0-4');
    const gap = await fetch(registry.url + location, { method: 'PATCH', headers: { ...auth, 'Content-Range': '10-12' }, body: 'xyz' });
    assert.equal(gap.status, 416);
    const status = await fetch(registry.url + location, { headers: auth });
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), '0-4');
    const done = await fetch(`${registry.url}${location}?digest=${sha256('hello world')}`, {
      method: 'PUT',
      headers: { ...auth, 'Content-Range': '5-10' },
      body: ' world',
    });
    assert.equal(done.status, 201);
    assert.equal(await (await fetch(`${registry.url}/v2/c/blobs/${sha256('hello world')}`)).text(), 'hello world');
    assert.equal((await fetch(registry.url + location, { headers: auth })).status, 404, 'a finished upload is gone');
  });

  it('mounts a blob from another repository without uploading it', async () => {
    const mounted = await fetch(`${registry.url}/v2/other/blobs/uploads/?mount=${sha256('hello world')}&from=c`, { method: 'POST', headers: auth });
    assert.equal(mounted.status, 201);
    assert.equal(mounted.headers.get('location'), `/v2/other/blobs/${sha256('hello world')}`);
  });

  it('refuses a manifest whose blobs were not pushed, and one whose digest does not match', async () => {
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('no such config'), size: 1 },
      layers: [],
    });
    const headers = { ...auth, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' };
    const missing = await fetch(`${registry.url}/v2/x/manifests/v1`, { method: 'PUT', headers, body: manifest });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { errors: { code: string }[] }).errors[0]!.code, 'MANIFEST_BLOB_UNKNOWN');
    const invalid = await fetch(`${registry.url}/v2/x/manifests/v1`, { method: 'PUT', headers, body: '{not json' });
    assert.equal(((await invalid.json()) as { errors: { code: string }[] }).errors[0]!.code, 'MANIFEST_INVALID');
    const wrongDigest = await fetch(`${registry.url}/v2/x/manifests/${sha256('other')}`, { method: 'PUT', headers, body: manifest });
    assert.equal(wrongDigest.status, 404, 'blob check first');
  });

  it('deletes a pushed tag; the name is then read as a package list again', async () => {
    const unauthorized = await fetch(`${registry.url}/v2/toolbox/manifests/v1`, { method: 'DELETE' });
    assert.equal(unauthorized.status, 401);
    assert.match(unauthorized.headers.get('www-authenticate') ?? '', /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/v2\/token",service="nixery",scope="repository:toolbox:delete", Basic/);
    assert.equal((await fetch(`${registry.url}/v2/toolbox/manifests/v1`, { method: 'DELETE', headers: auth })).status, 202);
    const after = await fetch(`${registry.url}/v2/toolbox/manifests/v1`);
    assert.equal(after.status, 404, 'there is no package called toolbox');
  });

  /**
   * Pushes a small blob and an OCI manifest naming it (plus `extra` fields); resolves to the
   * manifest's digest and the PUT's answer. Each repository's manifest differs (an annotation
   * names it): bytes two repositories pushed stay until both deleted them.
   */
  async function pushManifest(name: string, reference: string | null, extra: Record<string, unknown> = { annotations: { 'test.repository': name } }) {
    const config = Buffer.from('{}');
    assert.equal((await fetch(`${registry.url}/v2/${name}/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', headers: auth, body: config })).status, 201);
    const empty = { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(config), size: 2 };
    const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: empty, layers: [empty], ...extra });
    const put = await fetch(`${registry.url}/v2/${name}/manifests/${reference ?? sha256(body)}`, {
      method: 'PUT',
      headers: { ...auth, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      body,
    });
    assert.equal(put.status, 201, await put.text());
    return { digest: sha256(body), put };
  }
  const listTags = async (name: string) => ((await (await fetch(`${registry.url}/v2/${name}/tags/list`)).json()) as { tags: string[] }).tags;
  const errorCode = async (response: Response) => ((await response.json()) as { errors: { code: string }[] }).errors[0]!.code;

  it('a pushed tag on a package-list name, deleted: off the tags list, and a GET builds the package list again, listed then', async () => {
    const { digest } = await pushManifest('shell/hello', 'pinned');
    const pinned = await fetch(`${registry.url}/v2/shell/hello/manifests/pinned`, { method: 'HEAD' });
    assert.equal(pinned.headers.get('docker-content-digest'), digest, 'the pushed tag wins');
    assert.ok((await listTags('shell/hello')).includes('pinned'));
    assert.equal((await fetch(`${registry.url}/v2/shell/hello/manifests/pinned`, { method: 'DELETE', headers: auth })).status, 202);
    assert.ok(!(await listTags('shell/hello')).includes('pinned'), 'a deleted tag is not listed');
    const built = await fetch(`${registry.url}/v2/shell/hello/manifests/pinned`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(built.status, 200);
    const latest = await fetch(`${registry.url}/v2/shell/hello/manifests/latest`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(built.headers.get('docker-content-digest'), latest.headers.get('docker-content-digest'), 'the package-list image again');
    assert.ok((await listTags('shell/hello')).includes('pinned'), 'served by a build, the tag is listed again');
  });

  it('deletes a manifest by digest: its tags go, and a GET by digest is 404; a built image is not deleted', async () => {
    const { digest } = await pushManifest('deleting', 'a');
    await pushManifest('deleting', 'b');
    assert.deepEqual(await listTags('deleting'), ['a', 'b']);
    assert.equal((await fetch(`${registry.url}/v2/deleting/manifests/${digest}`, { method: 'DELETE' })).status, 401);
    assert.equal((await fetch(`${registry.url}/v2/deleting/manifests/${digest}`, { method: 'DELETE', headers: auth })).status, 202);
    assert.deepEqual(await listTags('deleting'), []);
    for (const ref of ['a', 'b', digest]) assert.equal((await fetch(`${registry.url}/v2/deleting/manifests/${ref}`)).status, 404, ref);
    const again = await fetch(`${registry.url}/v2/deleting/manifests/${digest}`, { method: 'DELETE', headers: auth });
    assert.equal(again.status, 404);
    assert.equal(await errorCode(again), 'MANIFEST_UNKNOWN');

    const hello = await fetch(`${registry.url}/v2/shell/hello/manifests/latest`, { method: 'HEAD' });
    const builtDigest = hello.headers.get('docker-content-digest')!;
    const refused = await fetch(`${registry.url}/v2/shell/hello/manifests/${builtDigest}`, { method: 'DELETE', headers: auth });
    assert.equal(refused.status, 404, 'shell/hello never pushed it');
    assert.equal((await fetch(`${registry.url}/v2/shell/hello/manifests/${builtDigest}`, { method: 'HEAD' })).status, 200);
  });

  it('deletes a pushed blob; a layer the registry built is 405 UNSUPPORTED and stays', async () => {
    const blob = Buffer.from('a blob to delete');
    assert.equal((await fetch(`${registry.url}/v2/blobby/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', headers: auth, body: blob })).status, 201);
    assert.equal((await fetch(`${registry.url}/v2/blobby/blobs/${sha256(blob)}`, { method: 'DELETE' })).status, 401);
    assert.equal((await fetch(`${registry.url}/v2/blobby/blobs/${sha256(blob)}`, { method: 'DELETE', headers: auth })).status, 202);
    assert.equal((await fetch(`${registry.url}/v2/blobby/blobs/${sha256(blob)}`)).status, 404);
    const again = await fetch(`${registry.url}/v2/blobby/blobs/${sha256(blob)}`, { method: 'DELETE', headers: auth });
    assert.equal(again.status, 404);
    assert.equal(await errorCode(again), 'BLOB_UNKNOWN');

    const manifest = (await (await fetch(`${registry.url}/v2/shell/hello/manifests/latest`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } })).json()) as { layers: { digest: string }[] };
    const layer = manifest.layers[0]!.digest;
    const refused = await fetch(`${registry.url}/v2/shell/hello/blobs/${layer}`, { method: 'DELETE', headers: auth });
    assert.equal(refused.status, 405);
    assert.equal(await errorCode(refused), 'UNSUPPORTED');
    assert.equal((await fetch(`${registry.url}/v2/shell/hello/blobs/${layer}`, { method: 'HEAD' })).status, 200);
  });

  it('lists the referrers of a built image: OCI-Subject on the push, artifactType filtering with OCI-Filters-Applied', async () => {
    const hello = await fetch(`${registry.url}/v2/shell/hello/manifests/latest`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const subject = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: hello.headers.get('docker-content-digest')!, size: Number(hello.headers.get('content-length')) };
    const { digest, put } = await pushManifest('shell/hello', null, { artifactType: 'application/vnd.example.sbom', subject, annotations: { 'org.example': 'sbom' } });
    assert.equal(put.headers.get('oci-subject'), subject.digest);

    const referrers = async (query = '', name = 'shell/hello') => {
      const response = await fetch(`${registry.url}/v2/${name}/referrers/${subject.digest}${query}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
      const index = (await response.json()) as { mediaType: string; manifests: { digest: string; artifactType?: string; annotations?: Record<string, string> }[] };
      assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
      return { filters: response.headers.get('oci-filters-applied'), manifests: index.manifests };
    };
    const all = await referrers();
    assert.equal(all.filters, null);
    // The built image's own SBOM comes first (e2e/registry/sbom.test.ts), then what was pushed.
    const [built, ...pushed] = all.manifests;
    assert.equal(built?.artifactType, 'application/vnd.cyclonedx+json');
    assert.deepEqual(pushed.map((m) => [m.digest, m.artifactType, m.annotations]), [[digest, 'application/vnd.example.sbom', { 'org.example': 'sbom' }]]);
    assert.deepEqual(await referrers('?artifactType=application/vnd.example.sbom'), { filters: 'artifactType', manifests: pushed });
    assert.deepEqual(await referrers('?artifactType=application/vnd.example.other'), { filters: 'artifactType', manifests: [] });
    assert.deepEqual((await referrers('', 'shell/git')).manifests, [built], 'a pushed referrer belongs to the repository it was pushed to; a built image\'s SBOM to every name');
    const invalid = await fetch(`${registry.url}/v2/shell/hello/referrers/sha256:abc`);
    assert.equal(invalid.status, 400);
    assert.equal(await errorCode(invalid), 'DIGEST_INVALID');

    assert.equal((await fetch(`${registry.url}/v2/shell/hello/manifests/${digest}`, { method: 'DELETE', headers: auth })).status, 202);
    assert.deepEqual((await referrers()).manifests, [built], 'a deleted referrer is no longer listed');
  });

  it('challenges an anonymous version check like a token-auth registry, and gives anonymous tokens for pulls', async () => {
    const ping = await fetch(`${registry.url}/v2/`);
    assert.equal(ping.status, 401);
    assert.equal(ping.headers.get('docker-distribution-api-version'), 'registry/2.0');
    const anonymous = (await (await fetch(`${registry.url}/v2/token?scope=repository:hello:pull,push`)).json()) as { token: string };
    assert.deepEqual(claimsOf(anonymous.token), { sub: 'anonymous', access: [{ type: 'repository', name: 'hello', actions: ['pull'] }] }, 'pulls only');
    assert.equal((await fetch(`${registry.url}/v2/`, { headers: { Authorization: `Bearer ${anonymous.token}` } })).status, 200);
    assert.equal((await fetch(`${registry.url}/v2/hello/manifests/latest`, { method: 'HEAD' })).status, 200, 'reads need no token');
    const push = await fetch(`${registry.url}/v2/x/blobs/uploads/`, { method: 'POST', headers: { Authorization: `Bearer ${anonymous.token}` } });
    assert.equal(push.status, 401, 'an anonymous token does not push');
  });

  it('exchanges Basic credentials for a registry token scoped to what was asked, so credential-based clients can push too', async () => {
    const basic = `Basic ${Buffer.from(`ci:${TOKEN}`).toString('base64')}`;
    const issued = await fetch(`${registry.url}/v2/token?service=nixery&scope=repository:x:push`, { headers: { Authorization: basic } });
    assert.equal(issued.status, 200);
    const { token } = (await issued.json()) as { token: string };
    const wrong = await fetch(`${registry.url}/v2/token`, { headers: { Authorization: `Basic ${Buffer.from('ci:wrong').toString('base64')}` } });
    assert.equal(wrong.status, 401);
    await runOk('skopeo', [
      'copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--dest-creds', `ci:${TOKEN}`,
      `docker://${registry.host}/hello:latest`, `docker://${registry.host}/with-creds:v1`,
    ]);
    assert.equal((await fetch(`${registry.url}/v2/with-creds/manifests/v1`, { method: 'HEAD' })).status, 200);
    assert.notEqual(token, TOKEN, 'the push token itself is never handed out');
    assert.deepEqual(claimsOf(token), { sub: 'admin', access: [{ type: 'repository', name: 'x', actions: ['push'] }] });
  });

  it('keeps pushing disabled on a registry without a token', async () => {
    const plain = await startRegistry();
    try {
      const response = await fetch(`${plain.url}/v2/x/blobs/uploads/`, { method: 'POST', headers: auth });
      assert.equal(response.status, 405);
      assert.match(((await response.json()) as { errors: { message: string }[] }).errors[0]!.message, /NIXERY_PUSH_TOKEN/);
    } finally {
      await plain.stop();
      await fs.rm(plain.storagePath, { recursive: true, force: true });
    }
  });
});
