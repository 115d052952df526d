// The distribution API under /v2/: version check, manifests by tag and digest, blobs with Range.
// Pushes are answered UNSUPPORTED until the push API exists.
import type { Request, Response } from 'express';
import { Router } from 'express';
import { pipeline } from 'node:stream/promises';
import type { ImageBuilder } from '../build/builder.ts';
import type { BuildResult } from '../build/result.ts';
import { paginate, type TagIndex } from '../build/tag-index.ts';
import { imageFromName, InvalidNameError, InvalidTagError, isValidRepositoryName } from '../image/name.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { GitRefNotFoundError, NixBuildError, NixEvaluationError, NixTimeoutError, PackagesNotFoundError } from '../nix/index.ts';
import { ChannelUnavailableError } from '../build/source-fingerprint.ts';
import { negotiateManifestFormat, renderManifest } from '../oci/image.ts';
import { MANIFEST_MEDIA_TYPE, MediaType } from '../oci/media-types.ts';
import type { StorageBackend } from '../storage/backend.ts';
import type { PushedTags } from '../push/tag-store.ts';
import { authorizePush, deleteManifest, handleUpload, issueToken, putManifest, versionCheck, type PushDeps } from './push-api.ts';
import { resolveRange } from './byte-range.ts';
import { RegistryError } from './errors.ts';
import { openFileBody, sendFileBody } from './send-file.ts';
import type { RecentErrors } from './recent-errors.ts';

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;
const MANIFEST_TYPES = new Set<string>([MediaType.dockerManifest, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.ociIndex]);

export interface RegistryApiDeps {
  storage: StorageBackend;
  builder: ImageBuilder;
  metrics: Metrics;
  recentErrors: RecentErrors;
  tags: TagIndex;
  pushedTags: PushedTags;
  push: PushDeps;
}

interface Route {
  name: string;
  kind: 'manifests' | 'blobs' | 'uploads' | 'tags';
  /** Tag or digest; the upload id for uploads ('' when starting one). */
  reference: string;
}

/** Splits /v2/<name>/<kind>/<reference>; the name itself may contain slashes. */
export function parseRoute(path: string): Route | null {
  const upload = /^\/v2\/(.+)\/blobs\/uploads\/?([^/]*)$/.exec(path);
  if (upload) return { name: upload[1]!, kind: 'uploads', reference: upload[2]! };
  const match = /^\/v2\/(.+)\/(manifests|blobs|tags)\/([^/]+)\/?$/.exec(path);
  if (match) {
    const [, name, kind, reference] = match as unknown as [string, string, Route['kind'], string];
    return { name, kind, reference };
  }
  return null;
}

export function registryApi(deps: RegistryApiDeps): Router {
  const router = Router();

  router.use((_req, res, next) => {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    next();
  });

  router.all('/v2/', (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new RegistryError('UNSUPPORTED', `${req.method} is not supported here`);
    versionCheck(deps.push, req, res);
  });

  router.get('/v2/token', (req, res) => issueToken(deps.push, req, res));

  router.all('/v2/{*rest}', async (req, res) => {
    const route = parseRoute(req.path);
    if (!route) throw new RegistryError('NAME_UNKNOWN', `no registry endpoint at ${req.path}`, undefined, 404);
    if (!isValidRepositoryName(route.name)) {
      throw new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(route.name)}`);
    }
    res.locals.route = `/v2/:name/${route.kind}`;
    const readOnly = req.method === 'GET' || req.method === 'HEAD';
    if (route.kind === 'uploads' || !readOnly) {
      authorizePush(deps.push, req, res);
      if (route.kind === 'uploads') return handleUpload(deps.push, req, res, route.name, route.reference);
      if (route.kind === 'manifests' && req.method === 'PUT') return putManifest(deps.push, req, res, route.name, route.reference);
      if (route.kind === 'manifests' && req.method === 'DELETE') return deleteManifest(deps.push, res, route.name, route.reference);
      throw new RegistryError('UNSUPPORTED', `${req.method} ${route.kind} is not supported`);
    }
    if (route.kind === 'tags') {
      if (route.reference !== 'list') throw new RegistryError('NAME_UNKNOWN', `no registry endpoint at ${req.path}`, undefined, 404);
      return listTags(deps, req, res, route.name);
    }
    if (route.kind === 'blobs') return serveBlob(deps, req, res, route.reference);
    return serveManifest(deps, req, res, route);
  });

  return router;
}

async function serveManifest(deps: RegistryApiDeps, req: Request, res: Response, route: Route): Promise<void> {
  if (route.reference.includes(':')) {
    const digest = checkDigest(route.reference);
    const info = await deps.storage.statBlob(digest);
    if (!info || !MANIFEST_TYPES.has(info.contentType)) {
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not known`, { digest });
    }
    const body = await deps.storage.readBlob(digest);
    return sendManifest(deps, req, res, body, info.contentType, digest);
  }

  // A pushed tag (a declared NixImage) wins over reading the name as a package list.
  const pushed = await deps.pushedTags.get(route.name, route.reference);
  if (pushed) {
    const body = await deps.storage.readBlob(pushed.digest).catch(() => null);
    if (body) return sendManifest(deps, req, res, body, pushed.mediaType, pushed.digest);
  }

  let image;
  try {
    image = imageFromName(route.name, route.reference);
  } catch (error) {
    if (error instanceof InvalidNameError) throw new RegistryError('NAME_INVALID', error.message);
    if (error instanceof InvalidTagError) throw new RegistryError('TAG_INVALID', error.message);
    throw error;
  }

  let result: BuildResult;
  try {
    result = await deps.builder.build(image);
  } catch (error) {
    throw toRegistryError(deps, `${route.name}:${route.reference}`, error);
  }
  await deps.tags.record(route.name, route.reference);
  const format = negotiateManifestFormat(req.headers.accept);
  const descriptor = result.manifests[format];
  const body = renderManifest(format, result.config, result.layers);
  return sendManifest(deps, req, res, body, MANIFEST_MEDIA_TYPE[format], descriptor.digest);
}

async function listTags(deps: RegistryApiDeps, req: Request, res: Response, name: string): Promise<void> {
  const n = req.query.n === undefined ? undefined : Number(req.query.n);
  if (n !== undefined && (!Number.isInteger(n) || n < 0)) {
    throw new RegistryError('UNSUPPORTED', 'n must be a non-negative integer', undefined, 400);
  }
  const last = typeof req.query.last === 'string' ? req.query.last : undefined;
  const page = paginate(await deps.tags.list(name), n, last);
  if (page.more && page.tags.length > 0) {
    const next = new URLSearchParams({ n: String(n), last: page.tags.at(-1)! });
    res.setHeader('Link', `</v2/${name}/tags/list?${next}>; rel="next"`);
  }
  res.json({ name, tags: page.tags });
}

function sendManifest(deps: RegistryApiDeps, req: Request, res: Response, body: Buffer, type: string, digest: string): void {
  res.status(200);
  res.setHeader('Content-Type', type);
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('ETag', `"${digest}"`);
  res.setHeader('Content-Length', body.length);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  deps.metrics.bytesServed.inc({ kind: 'manifest' }, body.length);
  res.end(body);
}

async function serveBlob(deps: RegistryApiDeps, req: Request, res: Response, reference: string): Promise<void> {
  const digest = checkDigest(reference);
  const delivery = await deps.storage.deliverBlob(digest);
  if (!delivery) throw blobUnknown(digest);
  const { info } = delivery;
  if (delivery.kind === 'redirect') {
    setBlobHeaders(res, digest);
    if (req.method === 'HEAD') {
      res.setHeader('Content-Type', info.contentType);
      res.setHeader('Content-Length', info.size);
      res.status(200).end();
      return;
    }
    res.redirect(307, delivery.url);
    return;
  }

  const header = req.headers.range;
  const answer = resolveRange(header, info.size);
  if (answer.kind === 'unsatisfiable') {
    setBlobHeaders(res, digest);
    res.setHeader('Content-Range', `bytes */${info.size}`);
    throw new RegistryError('RANGE_INVALID', `range ${header} cannot be satisfied for a blob of ${info.size} bytes`, undefined, 416);
  }
  const range = answer.kind === 'partial' ? { start: answer.start, end: answer.end } : undefined;
  const length = range ? range.end - range.start + 1 : info.size;
  // Opened before any header is set: a file deleted (garbage-collected) since the lookup is still
  // a clean 404, without the year-long Cache-Control of a blob.
  const handle = req.method === 'GET' && delivery.path !== undefined ? await openFileBody(delivery.path) : undefined;
  if (handle === null) throw blobUnknown(digest);
  try {
    setBlobHeaders(res, digest);
    res.setHeader('Content-Type', info.contentType);
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Length', length);
    if (range) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${info.size}`);
    } else {
      res.status(200);
    }
  } catch (error) {
    await handle?.close();
    throw error;
  }
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  res.locals.bodyBytes = 0;
  if (handle) {
    await sendFileBody(res, handle, delivery.path!, range?.start ?? 0, length, {
      onSent: (bytes) => {
        deps.metrics.bytesServed.inc({ kind: 'blob' }, bytes);
        res.locals.bodyBytes += bytes;
      },
    });
    return;
  }
  const body = delivery.open(range);
  let sent = 0;
  body.on('data', (chunk: Buffer) => {
    sent += chunk.length;
    res.locals.bodyBytes = sent;
  });
  try {
    await pipeline(body, res);
  } finally {
    deps.metrics.bytesServed.inc({ kind: 'blob' }, sent);
  }
}

function setBlobHeaders(res: Response, digest: string): void {
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('ETag', `"${digest}"`);
  res.setHeader('Cache-Control', 'max-age=31536000');
}

function blobUnknown(digest: string): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not known`, { digest });
}

function checkDigest(reference: string): string {
  if (!DIGEST.test(reference)) throw new RegistryError('DIGEST_INVALID', `invalid digest ${JSON.stringify(reference)}`);
  if (reference.startsWith('sha256:') && !SHA256.test(reference)) {
    throw new RegistryError('DIGEST_INVALID', `invalid sha256 digest ${JSON.stringify(reference)}: expected 64 lower-case hex digits`);
  }
  return reference;
}

function toRegistryError(deps: RegistryApiDeps, image: string, error: unknown): RegistryError {
  if (error instanceof PackagesNotFoundError) {
    const message = `package${error.packages.length === 1 ? '' : 's'} not found: ${error.packages.join(', ')}`;
    deps.recentErrors.add(image, message);
    return new RegistryError('MANIFEST_UNKNOWN', message, { packages: error.packages });
  }
  if (error instanceof GitRefNotFoundError) {
    deps.recentErrors.add(image, error.message);
    return new RegistryError('MANIFEST_UNKNOWN', `${error.message}: the tag names the git branch, tag or commit to build from`, {
      ref: error.ref,
    });
  }
  if (error instanceof ChannelUnavailableError) {
    deps.recentErrors.add(image, error.message);
    return new RegistryError('UNAVAILABLE', error.message);
  }
  if (error instanceof NixBuildError) {
    const message = `Nix failed to build ${error.packages.length ? error.packages.join(', ') : 'the image'}`;
    deps.recentErrors.add(image, message);
    return new RegistryError('UNKNOWN', message, { packages: error.packages });
  }
  if (error instanceof NixEvaluationError) {
    deps.recentErrors.add(image, 'the package source failed to evaluate');
    return new RegistryError('UNKNOWN', 'the package source failed to evaluate; see the registry log');
  }
  if (error instanceof NixTimeoutError) {
    const message = `Nix did not finish within ${error.seconds} s (${error.phase})`;
    deps.recentErrors.add(image, message);
    return new RegistryError('UNAVAILABLE', message, { timeoutSeconds: error.seconds, phase: error.phase });
  }
  deps.recentErrors.add(image, 'internal error');
  return error instanceof RegistryError ? error : new RegistryError('UNKNOWN', 'internal error while building the image; see the registry log');
}
