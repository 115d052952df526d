// Two `nixery serve` replicas on one GCS bucket (the local emulator): a chunked push whose PATCH
// and PUT go to different replicas succeeds, a stale chunk replayed on the other is 416, and a
// session one replica purges is unknown to the other (e2e/support/upload-replicas.ts); the
// session lived in the bucket as one object per chunk and is gone from it afterwards.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';
import { patchChunk, purgedOnOneUnknownOnOther, pushAcross, PUSH_TOKEN, QUICK_PURGE_ENV, replayStaleChunk, startUpload } from '../support/upload-replicas.ts';
import { startGcsEmulator, type GcsEmulator } from './emulator.ts';
import { writeServiceAccountKey } from './service-account.ts';

const BUCKET = 'nixery-e2e-replicas';

describe('registry replicas on one GCS bucket (emulated): upload sessions', () => {
  let emulator: GcsEmulator;
  let work: string;
  let a: RegistryProcess;
  let b: RegistryProcess;
  before(async () => {
    emulator = await startGcsEmulator({ buckets: [BUCKET] });
    work = await tempDir('nixery-e2e-gcs-replicas-');
    const key = await writeServiceAccountKey(work);
    emulator.registerServiceAccount(key.clientEmail, key.publicKey);
    const env = {
      NIXERY_STORAGE_BACKEND: 'gcs',
      GCS_BUCKET: BUCKET,
      GOOGLE_APPLICATION_CREDENTIALS: key.file,
      STORAGE_EMULATOR_HOST: emulator.url,
      NIXERY_PUSH_TOKEN: PUSH_TOKEN,
    };
    // STORAGE_PATH is not used with gcs; keep startRegistry's directories inside ours.
    a = await startRegistry({ env: { ...env, ...QUICK_PURGE_ENV }, storagePath: path.join(work, 'unused-a') });
    b = await startRegistry({ env, storagePath: path.join(work, 'unused-b') });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await emulator?.close();
    await fs.rm(work, { recursive: true, force: true });
  });

  it('a chunked push whose PATCH and PUT go to different replicas succeeds; both serve the blob', async () => {
    await pushAcross(a, b, 'team/app');
    assert.deepEqual(emulator.objectNames(BUCKET, 'uploads/'), [], 'the finished session left nothing in the bucket');
    assert.deepEqual(emulator.objectNames(BUCKET, 'staging/'), []);
  });

  it('keeps a session in the bucket as its record and one object per chunk', async () => {
    const location = await startUpload(a, 'team/layout');
    assert.equal((await patchChunk(a, location, 0, 'abc')).status, 202);
    assert.equal((await patchChunk(b, location, 3, 'defg')).status, 202);
    const id = location.split('/').pop()!;
    assert.deepEqual(emulator.objectNames(BUCKET, `uploads/${id}/`), [
      `uploads/${id}/chunks/0000000000000000`,
      `uploads/${id}/chunks/0000000000000003`,
      `uploads/${id}/session`,
    ]);
  });

  it('a stale chunk replayed on the other replica is 416 RANGE_INVALID, and a session purged by one is unknown to the other', async () => {
    const location = await replayStaleChunk(a, b, 'team/app');
    await purgedOnOneUnknownOnOther(a, b, location);
    assert.deepEqual(emulator.objectNames(BUCKET, `uploads/${location.split('/').pop()}/`), [], 'its objects are gone');
  });
});
