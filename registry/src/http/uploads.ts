// The distribution spec's push side: blob uploads (monolithic, chunked, cross-mount) and
// manifest PUT by tag or digest; DELETE of a tag. Every write needs the push token.
import type { Request, Response } from 'express';
import { Readable } from 'node:stream';
import type { TagIndex } from '../build/tag-index.ts';
import { validateTag, InvalidTagError } from '../image/name.ts';
import { sha256Digest } from '../oci/image.ts';
import { MediaType } from '../oci/media-types.ts';
import { checkPushAuthorization } from '../push/auth.ts';
import type { PushedTags } from '../push/tag-store.ts';
import { UploadNotFoundError, UploadRangeError, type Uploads, type UploadSession } from '../push/uploads.ts';
import { DigestMismatchError, type StorageBackend } from '../storage/backend.ts';
import { RegistryError } from './errors.ts';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const SHA256 = /^sha256:[a-f0-9]{64}$/;
const IMAGE_MANIFESTS = new Set<string>([MediaType.dockerManifest, MediaType.ociManifest]);
const INDEXES = new Set<string>([MediaType.dockerManifestList, MediaType.ociIndex]);

export interface PushDeps {
  storage: StorageBackend;
  uploads: Uploads;
  pushedTags: PushedTags;
  tags: TagIndex;
  pushToken: string | undefined;
}

export function authorizePush(deps: PushDeps, req: Request, res: Response): void {
  const result = checkPushAuthorization(req.headers.authorization, deps.pushToken);
  if (result.ok) return;
  if (result.reason === 'disabled') {
    throw new RegistryError('UNSUPPORTED', 'pushing is disabled on this registry (no NIXERY_PUSH_TOKEN is configured)');
  }
  challenge(req, res);
  throw new RegistryError('UNAUTHORIZED', result.reason === 'missing' ? 'pushing needs the push token' : 'the push token is not valid');
}

/**
 * Bearer first, as registries do: clients given a token (skopeo --dest-registry-token) send it,
 * clients given credentials fetch one from the realm. Basic stays available for simple clients.
 */
function challenge(req: Request, res: Response): void {
  const realm = `${req.protocol}://${req.headers.host ?? 'localhost'}/v2/token`;
  res.setHeader('WWW-Authenticate', [`Bearer realm="${realm}",service="nixery"`, 'Basic realm="nixery"']);
}

/** What anonymous clients get from the token endpoint: it grants reads, which need no token anyway. */
export const ANONYMOUS_TOKEN = 'anonymous';

/**
 * The token endpoint of the bearer flow. Basic credentials (any user, the push token as password)
 * buy the push token; no credentials buy an anonymous token, since pulls are open to everyone.
 */
export function issueToken(deps: PushDeps, req: Request, res: Response): void {
  if (!deps.pushToken) throw new RegistryError('UNSUPPORTED', 'this registry has no authentication: pulls need no token');
  let token = ANONYMOUS_TOKEN;
  if (req.headers.authorization !== undefined) {
    if (!checkPushAuthorization(req.headers.authorization, deps.pushToken).ok) {
      res.setHeader('WWW-Authenticate', 'Basic realm="nixery"');
      throw new RegistryError('UNAUTHORIZED', 'the token endpoint needs the push token as the password');
    }
    token = deps.pushToken;
  }
  res.setHeader('Cache-Control', 'no-store');
  res.json({ token, access_token: token, expires_in: 3600, issued_at: new Date().toISOString() });
}

/**
 * The version check. With pushing enabled it behaves like a token-auth registry: a request
 * without a bearer token is challenged, so clients learn where to get tokens (containers/image
 * and Docker only send credentials after such a challenge). Any bearer token passes: reads are open.
 */
export function versionCheck(deps: PushDeps, req: Request, res: Response): void {
  if (deps.pushToken && !/^bearer\s+\S/i.test(req.headers.authorization ?? '')) {
    challenge(req, res);
    throw new RegistryError('UNAUTHORIZED', 'authentication required: get a token from the realm (anonymous tokens allow pulls)');
  }
  res.json({});
}

export async function handleUpload(deps: PushDeps, req: Request, res: Response, name: string, id: string): Promise<void> {
  try {
    if (id === '') {
      if (req.method !== 'POST') throw new RegistryError('UNSUPPORTED', `${req.method} needs an upload id`);
      return await startUpload(deps, req, res, name);
    }
    const session = deps.uploads.get(id, name);
    switch (req.method) {
      case 'GET':
        return uploadStatus(res, session, 204);
      case 'PATCH':
        await deps.uploads.append(session, req, contentRangeStart(req.headers['content-range']));
        return uploadStatus(res, session, 202);
      case 'PUT':
        return await finishUpload(deps, req, res, session);
      case 'DELETE':
        await deps.uploads.finish(session);
        res.status(204).end();
        return;
      default:
        throw new RegistryError('UNSUPPORTED', `${req.method} is not an upload operation`);
    }
  } catch (error) {
    if (error instanceof UploadNotFoundError) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', error.message);
    if (error instanceof UploadRangeError) {
      res.setHeader('Range', rangeHeader(error.size));
      throw new RegistryError('RANGE_INVALID', error.message, undefined, 416);
    }
    if (error instanceof DigestMismatchError) throw new RegistryError('DIGEST_INVALID', error.message);
    throw error;
  }
}

async function startUpload(deps: PushDeps, req: Request, res: Response, name: string): Promise<void> {
  const mount = typeof req.query.mount === 'string' ? req.query.mount : undefined;
  if (mount !== undefined && SHA256.test(mount) && (await deps.storage.statBlob(mount))) {
    // Blobs are shared by every repository here, so any stored blob can be mounted.
    return blobCreated(res, name, mount);
  }
  const digest = typeof req.query.digest === 'string' ? req.query.digest : undefined;
  if (digest !== undefined) {
    const stored = await deps.storage.putBlob(req, { contentType: 'application/octet-stream', expectedDigest: checkDigest(digest) });
    return blobCreated(res, name, stored.digest);
  }
  const session = await deps.uploads.start(name);
  // A POST may carry the first chunk.
  if (Number(req.headers['content-length'] ?? 0) > 0) await deps.uploads.append(session, req);
  else req.resume();
  uploadStatus(res, session, 202);
}

async function finishUpload(deps: PushDeps, req: Request, res: Response, session: UploadSession): Promise<void> {
  const digest = checkDigest(typeof req.query.digest === 'string' ? req.query.digest : '');
  if (Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding']) {
    await deps.uploads.append(session, req, contentRangeStart(req.headers['content-range']));
  } else {
    req.resume();
  }
  try {
    const stored = await deps.storage.putBlob(deps.uploads.contents(session), { contentType: 'application/octet-stream', expectedDigest: digest });
    blobCreated(res, session.name, stored.digest);
  } finally {
    await deps.uploads.finish(session);
  }
}

export async function putManifest(deps: PushDeps, req: Request, res: Response, name: string, reference: string): Promise<void> {
  const body = await readLimited(req, MAX_MANIFEST_BYTES);
  let manifest: { mediaType?: unknown; config?: { digest?: unknown }; layers?: { digest?: unknown }[]; manifests?: { digest?: unknown }[] };
  try {
    manifest = JSON.parse(body.toString('utf8')) as typeof manifest;
  } catch {
    throw new RegistryError('MANIFEST_INVALID', 'the manifest is not valid JSON');
  }
  const headerType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
  const mediaType = typeof manifest.mediaType === 'string' ? manifest.mediaType : headerType;
  if (!IMAGE_MANIFESTS.has(mediaType) && !INDEXES.has(mediaType)) {
    throw new RegistryError('MANIFEST_INVALID', `unsupported manifest media type ${JSON.stringify(mediaType)}`);
  }
  const referenced = IMAGE_MANIFESTS.has(mediaType)
    ? [manifest.config?.digest, ...(manifest.layers ?? []).map((l) => l.digest)]
    : (manifest.manifests ?? []).map((m) => m.digest);
  if (IMAGE_MANIFESTS.has(mediaType) && typeof manifest.config?.digest !== 'string') {
    throw new RegistryError('MANIFEST_INVALID', 'an image manifest needs a config descriptor');
  }
  const missing: string[] = [];
  for (const digest of referenced) {
    if (typeof digest !== 'string' || !SHA256.test(digest)) throw new RegistryError('MANIFEST_INVALID', `invalid descriptor digest ${JSON.stringify(digest)}`);
    if (!(await deps.storage.statBlob(digest))) missing.push(digest);
  }
  if (missing.length) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `the manifest references blobs that were not pushed: ${missing.join(', ')}`, { missing });

  const digest = sha256Digest(body);
  const byDigest = reference.includes(':');
  if (byDigest && reference !== digest) throw new RegistryError('DIGEST_INVALID', `the manifest's digest is ${digest}, not ${reference}`);
  await deps.storage.putBlob(body, { contentType: mediaType, expectedDigest: digest });
  if (!byDigest) {
    try {
      validateTag(reference);
    } catch (error) {
      if (error instanceof InvalidTagError) throw new RegistryError('TAG_INVALID', error.message);
      throw error;
    }
    await deps.pushedTags.set(name, reference, { digest, mediaType, size: body.length });
    await deps.tags.record(name, reference);
  }
  res.status(201);
  res.setHeader('Location', `/v2/${name}/manifests/${digest}`);
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('Content-Length', 0);
  res.end();
}

export async function deleteManifest(deps: PushDeps, res: Response, name: string, reference: string): Promise<void> {
  if (reference.includes(':')) {
    throw new RegistryError('UNSUPPORTED', 'manifests are deleted by tag here; blobs stay until garbage collection');
  }
  if (!(await deps.pushedTags.delete(name, reference))) {
    throw new RegistryError('MANIFEST_UNKNOWN', `no pushed tag ${name}:${reference}`);
  }
  res.status(202).end();
}

function blobCreated(res: Response, name: string, digest: string): void {
  res.status(201);
  res.setHeader('Location', `/v2/${name}/blobs/${digest}`);
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('Content-Length', 0);
  res.end();
}

function uploadStatus(res: Response, session: UploadSession, status: number): void {
  res.status(status);
  res.setHeader('Location', `/v2/${session.name}/blobs/uploads/${session.id}`);
  res.setHeader('Docker-Upload-UUID', session.id);
  res.setHeader('Range', rangeHeader(session.size));
  res.setHeader('Content-Length', 0);
  res.end();
}

/** Inclusive byte range of what was received; the spec's `0-0` stands for an empty upload too. */
function rangeHeader(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}

function contentRangeStart(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:bytes )?([0-9]+)-([0-9]+)$/.exec(header.trim());
  if (!match) throw new RegistryError('RANGE_INVALID', `invalid Content-Range ${JSON.stringify(header)}`, undefined, 416);
  return Number(match[1]);
}

function checkDigest(digest: string): string {
  if (!SHA256.test(digest)) throw new RegistryError('DIGEST_INVALID', `expected a sha256 digest, got ${JSON.stringify(digest)}`);
  return digest;
}

async function readLimited(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new RegistryError('SIZE_INVALID', `manifests are limited to ${limit} bytes`, undefined, 413);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
