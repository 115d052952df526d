import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { PUSHED_TAG_TTL_MS, PushedTags } from './tag-store.ts';

const tempDir = tempDirs('nixery-pushed-tags-');
const toolbox = { digest: `sha256:${'a'.repeat(64)}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10 };
const toolbox2 = { ...toolbox, digest: `sha256:${'b'.repeat(64)}` };

/** Two replicas over one storage directory, with a clock the test moves; reads are counted. */
async function replicas() {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  let time = 0;
  const reads: string[] = [];
  const counting = Object.assign(Object.create(storage) as FilesystemStorage, {
    getDocument: <T>(key: string) => (reads.push(key), storage.getDocument<T>(key)),
  });
  const options = { now: () => time };
  return { here: new PushedTags(counting, options), there: new PushedTags(storage, options), reads, advance: (ms: number) => (time += ms), storage };
}

describe('pushed tags', () => {
  it('remembers answers, misses included, so repeated manifest requests do not read storage', async () => {
    const { here, reads } = await replicas();
    for (let i = 0; i < 5; i++) assert.equal(await here.get('shell/hello', 'latest'), null);
    assert.equal(reads.length, 1);
  });

  it("sees this replica's push and delete at once", async () => {
    const { here } = await replicas();
    assert.equal(await here.get('toolbox', 'v1'), null);
    await here.set('toolbox', 'v1', toolbox);
    assert.deepEqual(await here.get('toolbox', 'v1'), toolbox);
    assert.equal(await here.delete('toolbox', 'v1'), true);
    assert.equal(await here.get('toolbox', 'v1'), null);
    assert.equal(await here.delete('toolbox', 'v1'), false);
  });

  it("sees another replica's push and delete once PUSHED_TAG_TTL_MS has passed", async () => {
    const { here, there, advance } = await replicas();
    assert.equal(await here.get('toolbox', 'v1'), null);
    await there.set('toolbox', 'v1', toolbox);
    assert.equal(await here.get('toolbox', 'v1'), null, 'still the remembered miss');
    advance(PUSHED_TAG_TTL_MS);
    assert.deepEqual(await here.get('toolbox', 'v1'), toolbox);
    await there.set('toolbox', 'v1', toolbox2);
    await there.delete('toolbox', 'v1');
    advance(PUSHED_TAG_TTL_MS);
    assert.equal(await here.get('toolbox', 'v1'), null);
  });

  it('forgets what it remembered when a write fails, and reads storage next time', async () => {
    const { here, reads, storage } = await replicas();
    assert.equal(await here.get('toolbox', 'v1'), null);
    const failing = Object.assign(Object.create(storage) as FilesystemStorage, {
      putDocument: () => Promise.reject(new Error('ENOSPC')),
      getDocument: <T>(key: string) => (reads.push(key), storage.getDocument<T>(key)),
    });
    const broken = new PushedTags(failing);
    assert.equal(await broken.get('toolbox', 'v1'), null);
    const before = reads.length;
    await assert.rejects(broken.set('toolbox', 'v1', toolbox), /ENOSPC/);
    assert.equal(await broken.get('toolbox', 'v1'), null);
    assert.equal(reads.length, before + 1);
  });
});
