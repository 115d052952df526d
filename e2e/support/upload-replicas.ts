// Chunked pushes across two `nixery serve` replicas on one storage (a shared directory or one GCS
// bucket): the scenarios e2e/registry/replicas-uploads.test.ts and e2e/gcs/replicas-uploads-gcs
// .test.ts both run, so the two backends are held to the same behaviour.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { eventually } from '@nixery/test-support';
import type { RegistryProcess } from './registry.ts';

export const PUSH_TOKEN = 'e2e-replica-push-token-0123456789';
const auth = { Authorization: `Bearer ${PUSH_TOKEN}` };

/**
 * Environment of a replica whose purge drops sessions idle for 11 s (the TTL must exceed the
 * receive timeout); its first purge runs 30 s after it starts (the shortest purge interval).
 */
export const QUICK_PURGE_ENV = { NIXERY_HEADERS_TIMEOUT: '5', NIXERY_RECEIVE_TIMEOUT: '10', NIXERY_UPLOAD_SESSION_TTL: '11' };

export function sha256(data: string | Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function errorCode(body: string): string | undefined {
  return (JSON.parse(body) as { errors?: { code: string }[] }).errors?.[0]?.code;
}

/** POSTs a new upload session on `replica`; returns its Location (a path). */
export async function startUpload(replica: RegistryProcess, name: string): Promise<string> {
  const started = await fetch(`${replica.url}/v2/${name}/blobs/uploads/`, { method: 'POST', headers: auth });
  assert.equal(started.status, 202, await started.text());
  const location = started.headers.get('location');
  assert.ok(location !== null && location.startsWith(`/v2/${name}/blobs/uploads/`), String(location));
  return location;
}

/** PATCHes one chunk with its Content-Range; returns the answer's status, Range and body. */
export async function patchChunk(replica: RegistryProcess, location: string, start: number, chunk: string): Promise<{ status: number; range: string | null; body: string }> {
  const answer = await fetch(replica.url + location, {
    method: 'PATCH',
    headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + chunk.length - 1}` },
    body: chunk,
  });
  return { status: answer.status, range: answer.headers.get('range'), body: await answer.text() };
}

/** POST on A, PATCH on A, PATCH on B, PUT on B: the blob is stored, and served by both with its digest. */
export async function pushAcross(a: RegistryProcess, b: RegistryProcess, name: string): Promise<void> {
  const parts = ['first chunk, from replica A; ', 'second chunk, from replica B'];
  const blob = parts.join('');
  const digest = sha256(blob);
  const location = await startUpload(a, name);
  const first = await patchChunk(a, location, 0, parts[0]!);
  assert.equal(first.status, 202, first.body);
  assert.equal(first.range, `0-${parts[0]!.length - 1}`);
  const second = await patchChunk(b, location, parts[0]!.length, parts[1]!);
  assert.equal(second.status, 202, second.body);
  assert.equal(second.range, `0-${blob.length - 1}`);

  const status = await fetch(a.url + location, { headers: auth });
  assert.equal(status.status, 204);
  assert.equal(status.headers.get('range'), `0-${blob.length - 1}`, 'A sees what B received');

  const put = await fetch(`${b.url}${location}?digest=${digest}`, { method: 'PUT', headers: auth });
  assert.equal(put.status, 201, await put.text());
  assert.equal(put.headers.get('docker-content-digest'), digest);
  assert.equal(put.headers.get('location'), `/v2/${name}/blobs/${digest}`);
  for (const replica of [a, b]) {
    const served = await fetch(`${replica.url}/v2/${name}/blobs/${digest}`, { headers: auth });
    assert.equal(served.status, 200, `${replica.url}: ${served.status}`);
    const bytes = Buffer.from(await served.arrayBuffer());
    assert.equal(sha256(bytes), digest, `${replica.url} serves the blob with its digest`);
  }
  const ended = await fetch(a.url + location, { headers: auth });
  assert.equal(ended.status, 404, 'the session ended for both replicas');
  assert.equal(errorCode(await ended.text()), 'BLOB_UPLOAD_UNKNOWN');
}

/** A chunk replayed on the other replica after the session moved on is 416 RANGE_INVALID; the session is unchanged. */
export async function replayStaleChunk(a: RegistryProcess, b: RegistryProcess, name: string): Promise<string> {
  const location = await startUpload(a, name);
  assert.equal((await patchChunk(a, location, 0, '01234')).status, 202);
  assert.equal((await patchChunk(b, location, 5, '56789')).status, 202);
  const replayed = await patchChunk(b, location, 0, '01234');
  assert.equal(replayed.status, 416, replayed.body);
  assert.equal(replayed.range, '0-9');
  assert.equal(errorCode(replayed.body), 'RANGE_INVALID');
  const status = await fetch(a.url + location, { headers: auth });
  assert.equal(status.headers.get('range'), '0-9');
  return location;
}

/**
 * `purging` (started with QUICK_PURGE_ENV) drops a session idle past its TTL that `other` served;
 * from then on `other` answers 404 BLOB_UPLOAD_UNKNOWN for it.
 */
export async function purgedOnOneUnknownOnOther(purging: RegistryProcess, other: RegistryProcess, location: string): Promise<void> {
  // Watch the log, not the session: a request on it would be activity that keeps it.
  const purged = /"msg":"purged abandoned upload sessions and staging objects".*"uploadSessions":[1-9]/;
  await eventually('the quick-purge replica to purge the idle session', () => (purged.test(purging.logs()) ? true : undefined), 120_000, 250);
  assert.doesNotMatch(other.logs(), /purged abandoned upload sessions/, 'not the other one (its TTL is an hour)');
  const answer = await fetch(other.url + location, { headers: auth });
  const body = await answer.text();
  assert.equal(answer.status, 404, body);
  assert.equal(errorCode(body), 'BLOB_UPLOAD_UNKNOWN');
  const patched = await patchChunk(other, location, 10, 'late');
  assert.equal(patched.status, 404, patched.body);
}
