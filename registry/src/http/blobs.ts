// GET and HEAD /v2/<name>/blobs/<digest>: a redirect to the storage backend, or the bytes with
// Range support, sent from a file where the backend has one. DELETE of a pushed blob.
import type { Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import type { Metrics } from '../metrics/metrics.ts';
import type { Blobs } from '../service/blobs.ts';
import { resolveRange } from './byte-range.ts';
import { checkDigest } from './digests.ts';
import { RegistryError } from './errors.ts';
import { openFileBody, sendFileBody } from './send-file.ts';

export interface BlobsDeps {
  blobs: Blobs;
  metrics: Metrics;
}

export async function getBlob(deps: BlobsDeps, req: Request, res: Response, reference: string): Promise<void> {
  const digest = checkDigest(reference);
  const delivery = await deps.blobs.deliver(digest);
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

/** DELETE /v2/<name>/blobs/<digest>: 202 for a pushed blob; what the registry built, or a manifest, is 405 UNSUPPORTED. */
export async function deleteBlob(deps: BlobsDeps, res: Response, name: string, reference: string): Promise<void> {
  const digest = checkDigest(reference);
  const deletion = await deps.blobs.delete(digest);
  if (deletion.kind === 'unknown') throw blobUnknown(digest);
  if (deletion.kind === 'refused') {
    throw new RegistryError(
      'UNSUPPORTED',
      deletion.reason === 'manifest'
        ? `${digest} is a manifest: delete it with DELETE /v2/${name}/manifests/${digest}`
        : `blob ${digest} was built by this registry and belongs to its build cache; it is not deleted through the API`,
      { digest },
    );
  }
  res.status(202).setHeader('Content-Length', 0);
  res.end();
}

function setBlobHeaders(res: Response, digest: string): void {
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('ETag', `"${digest}"`);
  res.setHeader('Cache-Control', 'max-age=31536000');
}

function blobUnknown(digest: string): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not known`, { digest });
}
