// /v2/<name>/blobs/uploads/: blob uploads of the push API, monolithic, chunked or as a
// cross-repository mount. Sessions are kept by push/uploads.ts in the shared storage, so any
// replica can serve any request of one; service/blobs.ts mounts, verifies and stores.
import type { Request, Response } from 'express';
import { UploadNotFoundError, UploadRangeError, type Uploads, type UploadSession } from '../push/uploads.ts';
import type { Blobs } from '../service/blobs.ts';
import { DigestMismatchError } from '../storage/backend.ts';
import { checkUploadDigest } from './digests.ts';
import { RegistryError } from './errors.ts';

export interface UploadsDeps {
  blobs: Blobs;
  uploads: Uploads;
}

/** `id` is '' when starting an upload (POST), else the upload's id. */
export async function handleUpload(deps: UploadsDeps, req: Request, res: Response, name: string, id: string): Promise<void> {
  try {
    if (id === '') {
      if (req.method !== 'POST') throw new RegistryError('UNSUPPORTED', `${req.method} needs an upload id`);
      return await startUpload(deps, req, res, name);
    }
    // In flight until answered: the purge of idle sessions never takes one a request is using.
    const session = await deps.uploads.open(id, name);
    let answer: () => void;
    try {
      answer = await onSession(deps, req, res, session);
    } finally {
      // Before the answer: a client that has it may send the next chunk to another replica, and
      // the session's last activity must already be this request's end.
      await deps.uploads.close(session);
    }
    answer();
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

/** Does what the request asks of its session; returns how to answer (sent once the session is closed). */
async function onSession(deps: UploadsDeps, req: Request, res: Response, session: UploadSession): Promise<() => void> {
  switch (req.method) {
    case 'GET':
      return () => uploadStatus(res, session, 204);
    case 'PATCH':
      await deps.uploads.append(session, req, contentRangeStart(req.headers['content-range']));
      return () => uploadStatus(res, session, 202);
    case 'PUT':
      return await finishUpload(deps, req, res, session);
    case 'DELETE':
      await deps.uploads.finish(session);
      return () => res.status(204).end();
    default:
      throw new RegistryError('UNSUPPORTED', `${req.method} is not an upload operation`);
  }
}

async function startUpload(deps: UploadsDeps, req: Request, res: Response, name: string): Promise<void> {
  const mount = typeof req.query.mount === 'string' ? req.query.mount : undefined;
  if (mount !== undefined && (await deps.blobs.canMount(mount))) return blobCreated(res, name, mount);
  const digest = typeof req.query.digest === 'string' ? req.query.digest : undefined;
  if (digest !== undefined) return blobCreated(res, name, await deps.blobs.put(req, checkUploadDigest(digest)));
  const session = await deps.uploads.start(name);
  try {
    // A POST may carry the first chunk.
    if (Number(req.headers['content-length'] ?? 0) > 0) await deps.uploads.append(session, req);
    else req.resume();
  } finally {
    await deps.uploads.close(session);
  }
  uploadStatus(res, session, 202);
}

async function finishUpload(deps: UploadsDeps, req: Request, res: Response, session: UploadSession): Promise<() => void> {
  const digest = checkUploadDigest(typeof req.query.digest === 'string' ? req.query.digest : '');
  if (Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding']) {
    await deps.uploads.append(session, req, contentRangeStart(req.headers['content-range']));
  } else {
    req.resume();
  }
  const stored = await deps.blobs.complete(session, digest);
  return () => blobCreated(res, session.name, stored);
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
