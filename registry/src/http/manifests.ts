// /v2/<name>/manifests/<reference>: GET and HEAD by tag or digest, PUT by tag or digest (with
// OCI-Subject when the manifest has a subject), DELETE by tag or digest. What a reference names is
// service/manifests.ts's business; this module translates requests,
// answers and errors, including how a failed build is answered (builder/outcome.ts).
import type { Request, Response } from 'express';
import type { Readable } from 'node:stream';
import { BuildRejectedError, BuildQueueFullError, ClientRateLimitedError } from '../builder/errors.ts';
import type { Failure } from '../builder/outcome.ts';
import { InvalidNameError, InvalidTagError } from '../image/name.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { negotiateIndexFormat, negotiateManifestFormat } from '../oci/image.ts';
import {
  ImageBuildFailedError,
  ManifestBlobsUnknownError,
  ManifestDigestMismatchError,
  ManifestInvalidError,
  ManifestUnknownError,
  PackagesRefusedError,
} from '../service/errors.ts';
import type { Manifest, Manifests, PushedManifestResult } from '../service/manifests.ts';
import { clientAddress } from './client-address.ts';
import { checkDigest } from './digests.ts';
import { RegistryError } from './errors.ts';
import type { RecentErrors } from './recent-errors.ts';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface ManifestsDeps {
  manifests: Manifests;
  metrics: Metrics;
  /** Failed builds, for the index page. */
  recentErrors: RecentErrors;
}

/** The client closed the connection before its answer: nothing can be sent any more. */
class ClientGoneError extends Error {
  constructor() {
    super('the client closed the connection before the manifest was ready');
    this.name = 'ClientGoneError';
  }
}

export async function getManifest(deps: ManifestsDeps, req: Request, res: Response, name: string, reference: string): Promise<void> {
  let manifest: Manifest;
  try {
    if (reference.includes(':')) manifest = await deps.manifests.byDigest(checkDigest(reference), name);
    else {
      // A client that leaves stops waiting for its build; one still queued for nobody else is dropped.
      const gone = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) gone.abort(new ClientGoneError());
      });
      const index = negotiateIndexFormat(req.headers.accept);
      const accepted = { image: negotiateManifestFormat(req.headers.accept, deps.manifests.layerCompression), ...(index ? { index } : {}) };
      manifest = await deps.manifests.byTag(name, reference, accepted, {
        signal: gone.signal,
        client: clientAddress(req.socket.remoteAddress),
      });
    }
  } catch (error) {
    throw registryError(deps, error);
  }
  res.status(200);
  res.setHeader('Content-Type', manifest.mediaType);
  res.setHeader('Docker-Content-Digest', manifest.digest);
  res.setHeader('ETag', `"${manifest.digest}"`);
  res.setHeader('Content-Length', manifest.body.length);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  deps.metrics.bytesServed.inc({ kind: 'manifest' }, manifest.body.length);
  res.end(manifest.body);
}

export async function putManifest(deps: ManifestsDeps, req: Request, res: Response, name: string, reference: string): Promise<void> {
  const body = await readLimited(req, MAX_MANIFEST_BYTES);
  const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
  let pushed: PushedManifestResult;
  try {
    pushed = await deps.manifests.put(name, reference, body, contentType);
  } catch (error) {
    throw registryError(deps, error);
  }
  const { digest } = pushed;
  res.status(201);
  res.setHeader('Location', `/v2/${name}/manifests/${digest}`);
  res.setHeader('Docker-Content-Digest', digest);
  // The spec's sign that the registry processed the subject: it is listed by the referrers API.
  if (pushed.subject !== undefined) res.setHeader('OCI-Subject', pushed.subject);
  res.setHeader('Content-Length', 0);
  res.end();
}

export async function deleteManifest(deps: ManifestsDeps, res: Response, name: string, reference: string): Promise<void> {
  try {
    if (reference.includes(':')) await deps.manifests.deleteByDigest(name, checkDigest(reference));
    else await deps.manifests.deleteTag(name, reference);
  } catch (error) {
    throw registryError(deps, error);
  }
  res.status(202).end();
}

/** The service's refusals as distribution errors; anything else stays as it is (a 500 from the app). */
function registryError(deps: ManifestsDeps, error: unknown): unknown {
  if (error instanceof ManifestUnknownError) {
    return new RegistryError('MANIFEST_UNKNOWN', error.message, error.digest === undefined ? undefined : { digest: error.digest });
  }
  if (error instanceof ManifestInvalidError) return new RegistryError('MANIFEST_INVALID', error.message);
  if (error instanceof ManifestBlobsUnknownError) return new RegistryError('MANIFEST_BLOB_UNKNOWN', error.message, { missing: error.missing });
  if (error instanceof ManifestDigestMismatchError) return new RegistryError('DIGEST_INVALID', error.message);
  if (error instanceof InvalidNameError) return new RegistryError('NAME_INVALID', error.message);
  if (error instanceof InvalidTagError) return new RegistryError('TAG_INVALID', error.message);
  if (error instanceof PackagesRefusedError) {
    return new RegistryError('DENIED', error.message, { packages: error.refused.map((r) => r.name), refused: error.refused });
  }
  if (error instanceof BuildRejectedError) {
    return new RegistryError(
      'TOOMANYREQUESTS',
      `${error.message}; retry in ${error.retryAfterSeconds} s`,
      {
        reason: error.reason,
        retryAfterSeconds: error.retryAfterSeconds,
        ...(error instanceof BuildQueueFullError ? { maxQueuedBuilds: error.maxQueued } : {}),
        ...(error instanceof ClientRateLimitedError ? { client: error.client, buildsPerMinute: error.perMinute } : {}),
      },
      undefined,
      { 'Retry-After': String(error.retryAfterSeconds) },
    );
  }
  // Nobody reads this answer; a 4xx keeps it out of the error log.
  if (error instanceof ClientGoneError) return new RegistryError('UNKNOWN', error.message, undefined, 499);
  if (error instanceof ImageBuildFailedError) {
    const answer = buildFailure(error.failure, error.cause);
    deps.recentErrors.add(error.image, answer.summary);
    return answer.error;
  }
  return error;
}

/** How a failed build is answered, and the line the index page lists for it; `cause` is what the builder threw. */
function buildFailure(failure: Failure, cause: unknown): { error: RegistryError; summary: string } {
  switch (failure.kind) {
    case 'packages_not_found':
      return { error: new RegistryError('MANIFEST_UNKNOWN', failure.message, { packages: failure.packages }), summary: failure.message };
    case 'git_ref_not_found': {
      const message = `${failure.message}: the tag names the git branch, tag or commit to build from`;
      return { error: new RegistryError('MANIFEST_UNKNOWN', message, { ref: failure.ref }), summary: failure.message };
    }
    case 'channel_unavailable':
      return { error: new RegistryError('UNAVAILABLE', failure.message), summary: failure.message };
    case 'nix_build_failed':
      return { error: new RegistryError('UNKNOWN', failure.message, { packages: failure.packages }), summary: failure.message };
    case 'nix_evaluation_failed':
      return {
        error: new RegistryError('UNKNOWN', 'the package source failed to evaluate; see the registry log'),
        summary: 'the package source failed to evaluate',
      };
    case 'nix_timeout': {
      const message = `Nix did not finish within ${failure.seconds} s (${failure.phase})`;
      return { error: new RegistryError('UNAVAILABLE', message, { timeoutSeconds: failure.seconds, phase: failure.phase }), summary: message };
    }
    case 'insufficient_space':
      return {
        error: new RegistryError('UNAVAILABLE', failure.message, { volume: failure.volume, freeBytes: failure.freeBytes, reserveBytes: failure.reserveBytes }),
        summary: failure.message,
      };
    case 'storage_quota_exceeded':
      // Pushed images may be deleted, or the quota raised: worth a retry later, so 503 with Retry-After.
      return {
        error: new RegistryError(
          'UNAVAILABLE',
          failure.message,
          { reason: 'storage_quota', imageBytes: failure.imageBytes, pinnedBytes: failure.pinnedBytes, quotaBytes: failure.quotaBytes },
          503,
          { 'Retry-After': String(failure.retryAfterSeconds) },
        ),
        summary: failure.message,
      };
    case 'closure_too_large':
      // A refusal by this registry's rule, not a failure: like a refused package, 403 DENIED.
      return {
        error: new RegistryError('DENIED', failure.message, { closureBytes: failure.closureBytes, maxClosureBytes: failure.maxClosureBytes }),
        summary: failure.message,
      };
    case 'storage_failure': {
      // Storage that cannot take writes (read-only, full) fails new builds only: built images are
      // still served, and a pull writes nothing (service/tags.ts).
      const refusal = storageRefusal(cause);
      const message = refusal
        ? `cannot build the image now: the registry's storage ${refusal.problem}; images built before are still served`
        : "cannot build the image now: the registry's storage failed; see the registry log";
      return { error: new RegistryError('UNAVAILABLE', message, refusal ? { storage: refusal.code } : undefined), summary: message };
    }
    case 'push_failure':
    case 'usage':
    case 'internal':
      return {
        error: new RegistryError('UNKNOWN', 'internal error while building the image; see the registry log'),
        summary: 'internal error',
      };
  }
}

/** A storage write refused for want of room or write access, from the errno up the cause chain. */
function storageRefusal(error: unknown): { code: string; problem: string } | undefined {
  const problems: Record<string, string> = { EROFS: 'is read-only', ENOSPC: 'is full', EDQUOT: 'is over its quota' };
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && problems[code]) return { code, problem: problems[code] };
  }
  return undefined;
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
