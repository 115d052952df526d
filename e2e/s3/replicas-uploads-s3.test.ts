// Two `nixery serve` replicas on one S3 bucket (Ceph radosgw, radosgw.ts): a chunked push whose
// PATCH and PUT go to different replicas succeeds, a stale chunk replayed on the other is 416,
// and a session one replica purges is unknown to the other (e2e/support/upload-replicas.ts); the
// session lived in the bucket as one object per chunk and is gone from it afterwards.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';
import { patchChunk, purgedOnOneUnknownOnOther, pushAcross, PUSH_TOKEN, QUICK_PURGE_ENV, replayStaleChunk, startUpload } from '../support/upload-replicas.ts';
import { startRadosGateway, type RadosGateway } from './radosgw.ts';

const BUCKET = 'nixery-e2e-replicas';

describe('registry replicas on one S3 bucket (Ceph radosgw): upload sessions', () => {
  let rgw: RadosGateway;
  let s3: S3Client;
  let work: string;
  let a: RegistryProcess;
  let b: RegistryProcess;
  before(async () => {
    rgw = await startRadosGateway();
    await rgw.createBucket(BUCKET);
    s3 = rgw.client();
    work = await tempDir('nixery-e2e-s3-replicas-');
    const env = { ...rgw.env(BUCKET), NIXERY_PUSH_TOKEN: PUSH_TOKEN };
    // STORAGE_PATH is not used with s3; keep startRegistry's directories inside ours.
    a = await startRegistry({ env: { ...env, ...QUICK_PURGE_ENV }, storagePath: path.join(work, 'unused-a') });
    b = await startRegistry({ env, storagePath: path.join(work, 'unused-b') });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    s3?.destroy();
    await rgw?.stop();
    await fs.rm(work, { recursive: true, force: true });
  });

  async function keys(prefix: string): Promise<string[]> {
    return ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!).sort();
  }

  it('a chunked push whose PATCH and PUT go to different replicas succeeds; both serve the blob', async () => {
    await pushAcross(a, b, 'team/app');
    assert.deepEqual(await keys('uploads/'), [], 'the finished session left nothing in the bucket');
    assert.deepEqual(await keys('staging/'), []);
  });

  it('keeps a session in the bucket as its record and one object per chunk', async () => {
    const location = await startUpload(a, 'team/layout');
    assert.equal((await patchChunk(a, location, 0, 'abc')).status, 202);
    assert.equal((await patchChunk(b, location, 3, 'defg')).status, 202);
    const id = location.split('/').pop()!;
    assert.deepEqual(await keys(`uploads/${id}/`), [`uploads/${id}/chunks/0000000000000000`, `uploads/${id}/chunks/0000000000000003`, `uploads/${id}/session`]);
  });

  it('a stale chunk replayed on the other replica is 416 RANGE_INVALID, and a session purged by one is unknown to the other', async () => {
    const location = await replayStaleChunk(a, b, 'team/app');
    await purgedOnOneUnknownOnOther(a, b, location);
    assert.deepEqual(await keys(`uploads/${location.split('/').pop()}/`), [], 'its objects are gone');
  });
});
