// Two `nixery serve` replicas on one storage directory (a ReadWriteMany volume's view): a chunked
// push whose PATCH and PUT go to different replicas succeeds, a stale chunk replayed on the other
// is 416, and a session one replica purges is unknown to the other (e2e/support/upload-replicas.ts).
import { after, before, describe, it } from 'node:test';
import fs from 'node:fs/promises';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';
import { purgedOnOneUnknownOnOther, pushAcross, PUSH_TOKEN, QUICK_PURGE_ENV, replayStaleChunk } from '../support/upload-replicas.ts';

describe('registry replicas on one storage directory: upload sessions', () => {
  let storagePath: string;
  let a: RegistryProcess;
  let b: RegistryProcess;
  before(async () => {
    storagePath = await tempDir('nixery-e2e-replicas-');
    a = await startRegistry({ storagePath, env: { NIXERY_PUSH_TOKEN: PUSH_TOKEN, ...QUICK_PURGE_ENV } });
    b = await startRegistry({ storagePath, env: { NIXERY_PUSH_TOKEN: PUSH_TOKEN } });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await fs.rm(storagePath, { recursive: true, force: true });
  });

  it('a chunked push whose PATCH and PUT go to different replicas succeeds; both serve the blob', async () => {
    await pushAcross(a, b, 'team/app');
  });

  it('a stale chunk replayed on the other replica is 416 RANGE_INVALID, and a session purged by one is unknown to the other', async () => {
    const location = await replayStaleChunk(a, b, 'team/app');
    await purgedOnOneUnknownOnOther(a, b, location);
  });
});
