import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BuildResult } from '../builder/result.ts';
import { createLogger } from '../log/logger.ts';
import { MediaType } from '../oci/media-types.ts';
import { EMPTY_JSON, renderReferrer } from '../oci/referrer.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { parseChallenges, parsePushReference, PushError, pushImage, type PushTarget } from './client.ts';
import { PushLocations } from './push-locations.ts';

describe('push references', () => {
  it('split into registry, repository and tag', () => {
    assert.deepEqual(parsePushReference('nixery.team-a.svc.cluster.local:5000/toolbox:v1'), {
      registry: 'nixery.team-a.svc.cluster.local:5000',
      name: 'toolbox',
      tag: 'v1',
    });
    assert.deepEqual(parsePushReference('127.0.0.1:5000/team/tools'), { registry: '127.0.0.1:5000', name: 'team/tools', tag: 'latest' });
  });
  it('need a registry and valid names', () => {
    assert.throws(() => parsePushReference('toolbox:v1'), /registry\/name:tag/);
    assert.throws(() => parsePushReference('host:5000/Bad..Name:v1'), /invalid repository name/);
    assert.throws(() => parsePushReference('host:5000/ok:-bad'), /invalid tag/);
  });
});

describe('WWW-Authenticate challenges', () => {
  it('are parsed one by one, also when a server sends several', () => {
    assert.deepEqual(parseChallenges('Bearer realm="http://r:5000/v2/token",service="nixery", Basic realm="nixery"'), [
      { scheme: 'bearer', params: { realm: 'http://r:5000/v2/token', service: 'nixery' } },
      { scheme: 'basic', params: { realm: 'nixery' } },
    ]);
    assert.deepEqual(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), [
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
    ]);
    assert.deepEqual(parseChallenges(''), []);
  });
});

const tempDir = tempDirs('nixery-push-client-');
const quiet = createLogger({ write: () => {} });
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * An image in filesystem storage: a small config, a 3 MiB layer and a 1 MiB layer, and its SBOM
 * (a document, the empty config, a referrer manifest of the image). `blobs` are all of them.
 */
async function storedImage(): Promise<{ storage: FilesystemStorage; result: BuildResult; blobs: Map<string, Buffer> }> {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex') }));
  const layers = [randomBytes(3 << 20), randomBytes(1 << 20)];
  const blobs = new Map<string, Buffer>();
  for (const blob of [config, ...layers]) {
    const { digest } = await storage.putBlob(blob, { contentType: 'application/octet-stream' });
    blobs.set(digest, blob);
  }
  const descriptor = (data: Buffer, mediaType: string) => ({ mediaType, digest: sha256(data), size: data.length });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: descriptor(config, 'application/vnd.docker.container.image.v1+json'),
      layers: layers.map((l) => descriptor(l, 'application/vnd.docker.image.rootfs.diff.tar.gzip')),
    }),
  );
  await storage.putBlob(manifest, { contentType: 'application/vnd.docker.distribution.manifest.v2+json' });
  const sbomDocument = Buffer.from(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1, nonce: randomBytes(8).toString('hex') }));
  for (const blob of [sbomDocument, EMPTY_JSON]) {
    const { digest } = await storage.putBlob(blob, { contentType: 'application/octet-stream' });
    blobs.set(digest, blob);
  }
  const docker = descriptor(manifest, MediaType.dockerManifest);
  const document = descriptor(sbomDocument, 'application/vnd.cyclonedx+json');
  const referrer = renderReferrer({ artifactType: document.mediaType, blob: document, subject: docker });
  await storage.putBlob(referrer, { contentType: MediaType.ociManifest });
  const result = {
    name: 'hello',
    tag: 'latest',
    digest: sha256(manifest),
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    size: manifest.length,
    config: descriptor(config, 'application/vnd.docker.container.image.v1+json'),
    layers: layers.map((l) => ({ ...descriptor(l, 'x'), diffId: sha256(l), storePaths: [], kind: 'store-paths', cached: false })),
    manifests: { docker, oci: { mediaType: MediaType.ociManifest, digest: `sha256:${'0'.repeat(64)}`, size: 1 } },
    sbomDigest: sha256(referrer),
    sbom: { document, referrers: { docker: descriptor(referrer, MediaType.ociManifest), oci: { mediaType: MediaType.ociManifest, digest: `sha256:${'1'.repeat(64)}`, size: 1 } } },
  } as unknown as BuildResult;
  return { storage, result, blobs };
}

interface Seen {
  method: string;
  /** Path and query as the client sent them. */
  url: string;
  bytes: number;
  authorization: string | undefined;
}

interface FakeRegistryOptions {
  /** Whether a POST with ?digest= and the body stores the blob (201), or only opens a session (202). */
  singlePost: boolean;
  /** The Location of an upload session. */
  location?: (origin: string, id: string) => string;
  /** Every blob PUT is answered with this. */
  failPut?: { status: number; body: unknown };
  /** Blobs the registry has already. */
  existing?: string[];
  /** Blob HEADs are redirected to /storage/<digest>, as distribution on S3 does. */
  redirectHeads?: boolean;
  /** A registry without the referrers API: no `OCI-Subject` on a manifest PUT. */
  noReferrers?: boolean;
  /** Token auth: requests need `Bearer <issued>`, which the realm gives for the push token. */
  tokenAuth?: { pushToken: string; issued: string };
  /** Other repositories and the blobs they hold: a mount from one of them of a blob it holds succeeds. */
  elsewhere?: Record<string, string[]>;
}

/** Just enough of a distribution registry, recording every request. */
async function fakeRegistry(options: FakeRegistryOptions) {
  const blobs = new Map<string, Buffer>();
  for (const digest of options.existing ?? []) blobs.set(digest, Buffer.alloc(0));
  const manifests = new Map<string, Buffer>();
  const seen: Seen[] = [];
  const tokenRequests: URLSearchParams[] = [];
  let sessions = 0;
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url!, origin);
    seen.push({ method: req.method!, url: req.url!, bytes: body.length, authorization: req.headers.authorization });
    const answer = (status: number, headers: Record<string, string> = {}, json?: unknown) => {
      res.writeHead(status, { ...headers, ...(json === undefined ? { 'Content-Length': '0' } : { 'Content-Type': 'application/json' }) });
      res.end(json === undefined ? undefined : JSON.stringify(json));
    };
    if (options.tokenAuth) {
      const { pushToken, issued } = options.tokenAuth;
      if (url.pathname === '/token') {
        tokenRequests.push(url.searchParams);
        const ok = req.headers.authorization === `Basic ${Buffer.from(`nixery:${pushToken}`).toString('base64')}`;
        return ok ? answer(200, {}, { token: issued }) : answer(401, {}, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] });
      }
      if (req.headers.authorization !== `Bearer ${issued}`) {
        return answer(401, { 'WWW-Authenticate': `Bearer realm="${origin}/token",service="fake-registry"` }, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
      }
    }
    const store = (digest: string | null) => {
      if (digest !== sha256(body)) return answer(400, {}, { errors: [{ code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' }] });
      blobs.set(digest, body);
      answer(201, { Location: `/v2/t/blobs/${digest}`, 'Docker-Content-Digest': digest });
    };
    const blob = /^\/v2\/t\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url.pathname);
    if (req.method === 'HEAD' && blob && options.redirectHeads) return answer(307, { Location: `/storage/${blob[1]}` });
    if (req.method === 'HEAD' && blob) return answer(blobs.has(blob[1]!) ? 200 : 404);
    const stored = /^\/storage\/(sha256:[a-f0-9]{64})$/.exec(url.pathname);
    if (req.method === 'HEAD' && stored) return answer(blobs.has(stored[1]!) ? 200 : 404);
    if (req.method === 'POST' && url.pathname === '/v2/t/blobs/uploads/' && url.searchParams.has('mount')) {
      // As distribution: a blob the source holds is mounted; otherwise a session is opened instead.
      const mount = url.searchParams.get('mount')!;
      if (options.elsewhere?.[url.searchParams.get('from') ?? '']?.includes(mount)) {
        blobs.set(mount, Buffer.alloc(0));
        return answer(201, { Location: `/v2/t/blobs/${mount}`, 'Docker-Content-Digest': mount });
      }
      return answer(202, { Location: `/v2/t/blobs/uploads/session-${++sessions}`, Range: '0-0' });
    }
    if (req.method === 'DELETE' && url.pathname.startsWith('/v2/t/blobs/uploads/session-')) return answer(204);
    if (req.method === 'POST' && url.pathname === '/v2/t/blobs/uploads/') {
      if (options.singlePost && url.searchParams.has('digest')) return store(url.searchParams.get('digest'));
      const id = `session-${++sessions}`;
      return answer(202, { Location: (options.location ?? ((_, i) => `/v2/t/blobs/uploads/${i}`))(origin, id), Range: '0-0' });
    }
    if (req.method === 'PUT' && url.pathname.startsWith('/v2/t/blobs/uploads/session-')) {
      if (options.failPut) return answer(options.failPut.status, {}, options.failPut.body);
      return store(url.searchParams.get('digest'));
    }
    const manifest = /^\/v2\/t\/manifests\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'PUT' && manifest) {
      manifests.set(manifest[1]!, body);
      const subject = (JSON.parse(body.toString()) as { subject?: { digest: string } }).subject;
      return answer(201, { 'Docker-Content-Digest': sha256(body), ...(subject && !options.noReferrers ? { 'OCI-Subject': subject.digest } : {}) });
    }
    answer(404, {}, { errors: [{ code: 'NOT_FOUND', message: `${req.method} ${req.url}` }] });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const target: PushTarget = { registry: new URL(origin).host, name: 't', tag: 'v1', scheme: 'http', token: 'the-push-token-0123' };
  return { origin, target, blobs, manifests, seen, tokenRequests };
}

describe('pushing an image', () => {
  it('sends each blob in one POST to a registry that takes it so, then the manifest', async () => {
    const { storage, result, blobs } = await storedImage();
    const registry = await fakeRegistry({ singlePost: true });
    const outcome = await pushImage(storage, result, registry.target, quiet);
    const imageBytes = result.config.size + result.layers.reduce((sum, l) => sum + l.size, 0);
    assert.deepEqual(outcome, { reference: `${registry.target.registry}/t:v1`, digest: result.digest, uploaded: 3, skipped: 0, mounted: 0, uploadedBytes: imageBytes, sbomDigest: result.sbomDigest });
    for (const [digest, data] of blobs) assert.ok(registry.blobs.get(digest)?.equals(data), digest);
    assert.deepEqual(registry.seen.filter((r) => r.method === 'POST').map((r) => r.url).sort(), [...blobs.keys()].map((d) => `/v2/t/blobs/uploads/?digest=${d}`).sort());
    assert.deepEqual(
      registry.seen.filter((r) => r.method === 'PUT').map((r) => r.url),
      ['/v2/t/manifests/v1', `/v2/t/manifests/${result.sbomDigest}`],
      'only manifests are PUT: the image by tag, then its SBOM by digest',
    );
    assert.equal(sha256(registry.manifests.get('v1')!), result.digest);
    const sbom = JSON.parse(registry.manifests.get(result.sbomDigest)!.toString());
    assert.equal(sbom.subject.digest, result.digest);
    assert.deepEqual(sbom.layers, [result.sbom.document]);
  });

  it('pushes the SBOM to a registry without the referrers API too, saying it has it by digest only', async () => {
    const { storage, result } = await storedImage();
    const registry = await fakeRegistry({ singlePost: true, noReferrers: true });
    const lines: string[] = [];
    const outcome = await pushImage(storage, result, registry.target, createLogger({ write: (line) => lines.push(line) }));
    assert.equal(outcome.sbomDigest, result.sbomDigest);
    assert.ok(registry.manifests.has(result.sbomDigest));
    assert.ok(lines.some((l) => l.includes('no OCI-Subject') && l.includes(result.sbomDigest)), lines.join('\n'));
  });

  it('skips the blobs the registry has', async () => {
    const { storage, result } = await storedImage();
    const registry = await fakeRegistry({ singlePost: true, existing: [result.config.digest, result.layers[0]!.digest, result.sbom.document.digest, sha256(EMPTY_JSON)] });
    const outcome = await pushImage(storage, result, registry.target, quiet);
    assert.equal(outcome.uploaded, 1);
    assert.equal(outcome.skipped, 2);
    assert.equal(outcome.uploadedBytes, result.layers[1]!.size);
    assert.deepEqual(registry.seen.filter((r) => r.method === 'POST').map((r) => r.url), [`/v2/t/blobs/uploads/?digest=${result.layers[1]!.digest}`]);
  });

  it('skips the blobs the repository has without mounting them, even with sources to mount from', async () => {
    const { storage, result } = await storedImage();
    const everything = [result.config.digest, ...result.layers.map((l) => l.digest), result.sbom.document.digest, sha256(EMPTY_JSON)];
    const registry = await fakeRegistry({ singlePost: true, existing: everything, elsewhere: { other: everything } });
    const outcome = await pushImage(storage, result, registry.target, quiet, { mountFrom: ['other'] });
    assert.deepEqual([outcome.uploaded, outcome.skipped, outcome.mounted, outcome.uploadedBytes], [0, 3, 0, 0]);
    assert.deepEqual(registry.seen.filter((r) => r.url.includes('/blobs/uploads/')), [], 'no upload and no mount: HEAD found every blob');
  });

  it('mounts the missing blobs another repository holds, sending none of their bytes', async () => {
    const { storage, result } = await storedImage();
    const [big, small] = result.layers;
    const registry = await fakeRegistry({ singlePost: true, elsewhere: { 'team/app': [result.config.digest, big!.digest] } });
    const outcome = await pushImage(storage, result, registry.target, quiet, { mountFrom: ['team/app'] });
    assert.deepEqual([outcome.uploaded, outcome.skipped, outcome.mounted, outcome.uploadedBytes], [1, 0, 2, small!.size]);
    const posts = registry.seen.filter((r) => r.method === 'POST');
    assert.deepEqual(
      posts.filter((r) => r.url.includes('mount=')).map((r) => r.url).sort(),
      [result.config.digest, big!.digest, small!.digest].map((d) => `/v2/t/blobs/uploads/?mount=${d}&from=team/app`).sort(),
    );
    assert.ok(posts.every((r) => !r.url.includes('mount=') || r.bytes === 0), 'a mount sends no body');
    // The layer team/app lacks was answered with a session, and uploaded through it.
    const blobPuts = registry.seen.filter((r) => r.method === 'PUT' && r.url.includes('/blobs/uploads/'));
    assert.deepEqual(blobPuts.map((r) => [r.url.replace(/session-\d+/, 'session'), r.bytes]), [[`/v2/t/blobs/uploads/session?digest=${small!.digest}`, small!.size]]);
    assert.ok(registry.blobs.has(big!.digest) && registry.blobs.has(small!.digest));
    assert.equal(sha256(registry.manifests.get('v1')!), result.digest);
  });

  it('uploads a blob through the session the registry opens when it refuses the mount', async () => {
    const { storage, result, blobs } = await storedImage();
    const registry = await fakeRegistry({ singlePost: true, elsewhere: { 'team/app': [] } });
    const outcome = await pushImage(storage, result, registry.target, quiet, { mountFrom: ['team/app'] });
    assert.deepEqual([outcome.uploaded, outcome.mounted], [3, 0]);
    for (const digest of [result.config.digest, ...result.layers.map((l) => l.digest)]) assert.ok(registry.blobs.get(digest)?.equals(blobs.get(digest)!), digest);
    const imagePosts = registry.seen.filter((r) => r.method === 'POST' && !r.url.includes(result.sbom.document.digest) && !r.url.includes(sha256(EMPTY_JSON)));
    assert.ok(imagePosts.every((r) => r.url.includes('mount=')), 'each image blob started with a mount, no second POST');
  });

  it('tries the next source after a refused mount, cancelling the session it did not use', async () => {
    const { storage, result } = await storedImage();
    const registry = await fakeRegistry({ singlePost: true, elsewhere: { a: [], b: [result.config.digest, ...result.layers.map((l) => l.digest)] } });
    const outcome = await pushImage(storage, result, registry.target, quiet, { mountFrom: ['a', 'b'] });
    assert.deepEqual([outcome.uploaded, outcome.mounted], [0, 3]);
    assert.equal(registry.seen.filter((r) => r.method === 'DELETE').length, 3, "each of a's sessions cancelled");
  });

  it('mounts from the repository an earlier push put the blob in, and notes this push for the next', async () => {
    const { storage, result } = await storedImage();
    const locations = new PushLocations(storage);
    const registry = await fakeRegistry({ singlePost: true, elsewhere: { earlier: [result.layers[0]!.digest] } });
    await locations.remember(registry.target.registry, 'earlier', [result.layers[0]!.digest]);
    const outcome = await pushImage(storage, result, registry.target, quiet, { locations });
    assert.deepEqual([outcome.uploaded, outcome.mounted], [2, 1]);
    assert.ok(registry.seen.some((r) => r.url === `/v2/t/blobs/uploads/?mount=${result.layers[0]!.digest}&from=earlier`));
    const record = await locations.read(registry.target.registry);
    assert.deepEqual(record?.repositories.map((r) => r.name), ['t', 'earlier']);
    assert.deepEqual(new Set(record?.repositories[0]!.digests), new Set([result.config.digest, ...result.layers.map((l) => l.digest)]));
  });

  it('follows a redirect of a blob HEAD', async () => {
    const { storage, result } = await storedImage();
    const registry = await fakeRegistry({ singlePost: true, existing: [result.config.digest], redirectHeads: true });
    const outcome = await pushImage(storage, result, registry.target, quiet);
    assert.equal(outcome.skipped, 1);
    assert.equal(outcome.uploaded, 2);
    assert.equal(registry.seen.filter((r) => r.method === 'HEAD' && r.url.startsWith('/storage/')).length, 5, 'the image\'s three blobs and the SBOM\'s two');
  });

  it('after a 202 to the POST, PUTs the blob to the relative Location with ?digest=, and sends every blob once', async () => {
    const { storage, result, blobs } = await storedImage();
    const registry = await fakeRegistry({ singlePost: false });
    const outcome = await pushImage(storage, result, registry.target, quiet);
    assert.equal(outcome.uploaded, 3);
    for (const [digest, data] of blobs) assert.ok(registry.blobs.get(digest)?.equals(data), digest);
    assert.equal(sha256(registry.manifests.get('v1')!), result.digest);

    const blobPuts = registry.seen.filter((r) => r.method === 'PUT' && r.url.includes('/blobs/uploads/'));
    assert.equal(blobPuts.length, blobs.size);
    for (const put of blobPuts) assert.match(put.url, /^\/v2\/t\/blobs\/uploads\/session-\d+\?digest=sha256:[a-f0-9]{64}$/);
    // Only the first, smallest blob (the config) was offered in a single POST; once the registry
    // had said 202, the layers' bytes went in their PUT alone.
    const posts = registry.seen.filter((r) => r.method === 'POST');
    assert.deepEqual(posts.filter((r) => r.bytes > 0).map((r) => r.url), [`/v2/t/blobs/uploads/?digest=${result.config.digest}`]);
    const sent = registry.seen.reduce((sum, r) => sum + (r.url.includes('/blobs/') ? r.bytes : 0), 0);
    assert.equal(sent, [...blobs.values()].reduce((sum, b) => sum + b.length, 0) + result.config.size);
  });

  it('keeps the query of a Location and appends &digest= to it', async () => {
    const { storage, result } = await storedImage();
    const registry = await fakeRegistry({ singlePost: false, location: (origin, id) => `${origin}/v2/t/blobs/uploads/${id}?_state=a%2Bb~c%3D%3D` });
    await pushImage(storage, result, registry.target, quiet);
    const blobPuts = registry.seen.filter((r) => r.method === 'PUT' && r.url.includes('/blobs/uploads/'));
    assert.equal(blobPuts.length, 5, 'the image\'s three blobs and the SBOM\'s two');
    for (const put of blobPuts) assert.match(put.url, /^\/v2\/t\/blobs\/uploads\/session-\d+\?_state=a%2Bb~c%3D%3D&digest=sha256:[a-f0-9]{64}$/);
  });

  it("turns a registry error on the PUT into a PushError with the registry's code and message, without retrying it", async () => {
    const { storage, result } = await storedImage();
    const registry = await fakeRegistry({
      singlePost: false,
      failPut: { status: 400, body: { errors: [{ code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' }] } },
    });
    const error = await pushImage(storage, result, registry.target, quiet).then(
      () => assert.fail('the push succeeded'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof PushError, String(error));
    assert.equal(error.status, 400);
    assert.equal(error.registryCode, 'DIGEST_INVALID');
    assert.deepEqual(error.registryErrors, [{ code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' }]);
    assert.match(error.message, /^finishing the upload of blob sha256:[a-f0-9]{64} failed with HTTP 400: DIGEST_INVALID: provided digest did not match uploaded content$/);
    assert.equal(registry.seen.filter((r) => r.method === 'PUT').length, 1, 'a 4xx is final');
    assert.equal(registry.manifests.size, 0);
  });

  it('answers a Bearer challenge with a token from the realm, bought with the push token', async () => {
    const { storage, result } = await storedImage();
    const registry = await fakeRegistry({ singlePost: false, tokenAuth: { pushToken: 'the-push-token-0123', issued: 'issued-registry-token' } });
    const outcome = await pushImage(storage, result, registry.target, quiet);
    assert.equal(outcome.uploaded, 3);
    assert.equal(registry.tokenRequests.length, 1, 'one token serves the whole push');
    assert.equal(registry.tokenRequests[0]!.get('service'), 'fake-registry');
    assert.equal(registry.tokenRequests[0]!.get('scope'), 'repository:t:pull,push');
    // The first HEADs (sent together) met the challenge; everything after the token carried it.
    const tokenAt = registry.seen.findIndex((r) => r.url.startsWith('/token'));
    assert.ok(registry.seen.slice(0, tokenAt).every((r) => r.method === 'HEAD'));
    assert.ok(registry.seen.slice(tokenAt + 1).every((r) => r.authorization === 'Bearer issued-registry-token'));
    assert.equal(sha256(registry.manifests.get('v1')!), result.digest);
  });

  it('asks the token endpoint for pull on the repositories it may mount from', async () => {
    const { storage, result } = await storedImage();
    const registry = await fakeRegistry({ singlePost: true, elsewhere: { 'team/app': [result.config.digest] }, tokenAuth: { pushToken: 'the-push-token-0123', issued: 'issued-registry-token' } });
    const outcome = await pushImage(storage, result, registry.target, quiet, { mountFrom: ['team/app'] });
    assert.equal(outcome.mounted, 1);
    assert.deepEqual(registry.tokenRequests[0]!.getAll('scope'), ['repository:t:pull,push', 'repository:team/app:pull']);
  });

  it('fails with the 401 and the realm named when the token endpoint refuses the push token', async () => {
    const { storage, result } = await storedImage();
    const registry = await fakeRegistry({ singlePost: true, tokenAuth: { pushToken: 'another-token-00000', issued: 'issued-registry-token' } });
    await assert.rejects(pushImage(storage, result, registry.target, quiet), (error: unknown) => {
      assert.ok(error instanceof PushError);
      assert.equal(error.status, 401);
      assert.equal(error.registryCode, 'UNAUTHORIZED');
      assert.match(error.message, /^getting a push token from http:\/\/127\.0\.0\.1:\d+\/token failed with HTTP 401: UNAUTHORIZED: bad credentials$/);
      return true;
    });
  });
});
