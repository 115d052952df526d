// Pushing to a registry served over TLS (`nixery build --push --push-scheme https --push-ca-file`):
// the client trusts the CA bundle it is given, for the registry and its token realm alike, and
// without it fails on the certificate; a bundle is checked before anything is built.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { issueCertificate, makeCertificateAuthority, type CertificateAuthority, type ServingCertificate } from '@nixery/test-support';
import type { BuildResult } from '../builder/result.ts';
import { silentLogger } from '../log/logger.ts';
import { MediaType } from '../oci/media-types.ts';
import { EMPTY_JSON, renderReferrer } from '../oci/referrer.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { PushError, pushImage, readCaBundle, type PushTarget } from './client.ts';

const tempDir = tempDirs('nixery-push-tls-');
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const PUSH_TOKEN = 'the-push-token-0123';
const ISSUED = 'issued-registry-token';

let dir: string;
let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let serving: ServingCertificate;
before(async () => {
  dir = await tempDir();
  ca = await makeCertificateAuthority(dir, 'ca');
  otherCa = await makeCertificateAuthority(dir, 'other-ca');
  serving = await issueCertificate(ca, dir, 'registry', { hosts: ['127.0.0.1'] });
});

/** A config, one layer and the SBOM's blobs in filesystem storage, and the build result naming them. */
async function storedImage(): Promise<{ storage: FilesystemStorage; result: BuildResult }> {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const layer = randomBytes(64 << 10);
  const sbomDocument = Buffer.from(JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5', version: 1 }));
  for (const blob of [config, layer, sbomDocument, EMPTY_JSON]) await storage.putBlob(blob, { contentType: 'application/octet-stream' });
  const descriptor = (data: Buffer, mediaType: string) => ({ mediaType, digest: sha256(data), size: data.length });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: descriptor(config, 'application/vnd.oci.image.config.v1+json'),
      layers: [descriptor(layer, 'application/vnd.oci.image.layer.v1.tar+gzip')],
    }),
  );
  await storage.putBlob(manifest, { contentType: MediaType.ociManifest });
  const oci = descriptor(manifest, MediaType.ociManifest);
  const document = descriptor(sbomDocument, 'application/vnd.cyclonedx+json');
  const referrer = renderReferrer({ artifactType: document.mediaType, blob: document, subject: oci });
  await storage.putBlob(referrer, { contentType: MediaType.ociManifest });
  const unused = { mediaType: MediaType.dockerManifest, digest: `sha256:${'0'.repeat(64)}`, size: 1 };
  const result = {
    digest: oci.digest,
    mediaType: MediaType.ociManifest,
    config: descriptor(config, 'x'),
    layers: [descriptor(layer, 'x')],
    manifests: { docker: unused, oci },
    sbomDigest: sha256(referrer),
    sbom: { document, referrers: { docker: unused, oci: descriptor(referrer, MediaType.ociManifest) } },
  } as unknown as BuildResult;
  return { storage, result };
}

/** Just enough of a registry over HTTPS with the token flow; its realm is HTTPS too. */
async function httpsRegistry() {
  const paths: string[] = [];
  const manifests = new Map<string, Buffer>();
  const server = https.createServer({ cert: serving.cert, key: serving.key }, async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url!, origin);
    paths.push(url.pathname);
    const answer = (status: number, headers: Record<string, string> = {}, json?: unknown) => {
      res.writeHead(status, { ...headers, 'Content-Type': 'application/json' });
      res.end(json === undefined ? undefined : JSON.stringify(json));
    };
    if (url.pathname === '/token') {
      const ok = req.headers.authorization === `Basic ${Buffer.from(`nixery:${PUSH_TOKEN}`).toString('base64')}`;
      return ok ? answer(200, {}, { token: ISSUED }) : answer(401, {}, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] });
    }
    if (req.headers.authorization !== `Bearer ${ISSUED}`) {
      return answer(401, { 'WWW-Authenticate': `Bearer realm="${origin}/token",service="tls-registry"` }, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
    }
    if (req.method === 'HEAD') return answer(404);
    if (req.method === 'POST') {
      const digest = url.searchParams.get('digest')!;
      return answer(201, { Location: `/v2/t/blobs/${digest}`, 'Docker-Content-Digest': digest });
    }
    if (req.method === 'PUT') {
      manifests.set(url.pathname, body);
      return answer(201, { 'Docker-Content-Digest': sha256(body) });
    }
    answer(404, {}, { errors: [{ code: 'NOT_FOUND', message: `${req.method} ${req.url}` }] });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const target: PushTarget = { registry: new URL(origin).host, name: 't', tag: 'v1', scheme: 'https', token: PUSH_TOKEN };
  return { target, paths, manifests };
}

describe('pushing over TLS', () => {
  it('trusts the CA bundle it is given, for the registry and its token realm', async () => {
    const { storage, result } = await storedImage();
    const registry = await httpsRegistry();
    const outcome = await pushImage(storage, result, { ...registry.target, ca: await readCaBundle(ca.certFile) }, silentLogger);
    assert.equal(outcome.digest, result.digest);
    assert.equal(outcome.uploaded, 2, 'the image\'s config and layer');
    assert.ok(registry.paths.includes('/token'), 'the token came from the HTTPS realm');
    assert.equal(sha256(registry.manifests.get('/v2/t/manifests/v1')!), result.digest);
  });

  it('fails on the certificate without the CA, or with another one', async () => {
    const { storage, result } = await storedImage();
    const registry = await httpsRegistry();
    for (const target of [registry.target, { ...registry.target, ca: await readCaBundle(otherCa.certFile) }]) {
      await assert.rejects(pushImage(storage, result, target, silentLogger), (error: unknown) => {
        assert.ok(error instanceof PushError, String(error));
        assert.match(error.message, /certificate/);
        return true;
      });
    }
    assert.equal(registry.paths.length, 0, 'no request got through');
  });
});

describe('a CA bundle (--push-ca-file)', () => {
  it('holds every PEM certificate of the file, whatever else is around them', async () => {
    const file = path.join(dir, 'bundle.pem');
    await fs.writeFile(file, `# the cluster's CAs\n${otherCa.cert}\nsome comment\n${ca.cert}`);
    const bundle = await readCaBundle(file);
    assert.equal(bundle, `${otherCa.cert.trim()}\n${ca.cert.trim()}\n`);
  });

  it('is refused when the file cannot be read, holds no certificate, or one that does not parse', async () => {
    await assert.rejects(readCaBundle(path.join(dir, 'missing.pem')), /cannot read the CA bundle .*missing\.pem/);
    await assert.rejects(readCaBundle(serving.keyFile), /holds no PEM certificate/);
    const broken = path.join(dir, 'broken.pem');
    await fs.writeFile(broken, ca.cert.replace(/\n([A-Za-z0-9+/]{20})/, '\nAAAA$1'));
    await assert.rejects(readCaBundle(broken), /certificate 1 of the CA bundle .*broken\.pem does not parse/);
  });
});
