import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { paginate, RECORDED_TAG_TTL_MS, TagIndex } from './tags.ts';

const tempDir = tempDirs('nixery-tags-');

async function index(): Promise<TagIndex> {
  const storage = new FilesystemStorage(await tempDir());
  await storage.init();
  return new TagIndex(storage);
}

describe('tag index', () => {
  it('lists the tags served for a repository, sorted, once each', async () => {
    const tags = await index();
    await Promise.all(['v2', 'latest', 'v1', 'latest', 'v2'].map((t) => tags.record('shell/hello', t)));
    assert.deepEqual(await tags.list('shell/hello'), ['latest', 'v1', 'v2']);
    assert.deepEqual(await tags.list('shell'), []);
  });

  it('reads storage once for a tag it has recorded, and checks again after RECORDED_TAG_TTL_MS', async () => {
    const storage = new FilesystemStorage(await tempDir());
    await storage.init();
    const reads: string[] = [];
    const counting = Object.assign(Object.create(storage) as FilesystemStorage, {
      getDocument: <T>(key: string) => (reads.push(key), storage.getDocument<T>(key)),
    });
    let time = 0;
    const tags = new TagIndex(counting, { now: () => time });
    for (let i = 0; i < 5; i++) await tags.record('shell/hello', 'latest');
    assert.equal(reads.length, 1);
    await tags.record('shell/hello', 'v1');
    assert.equal(reads.length, 2, 'another tag is recorded');
    // Another replica rewrote the document without our tag (a lost read-modify-write race).
    await storage.putDocument('tags/shell/hello', { tags: ['v1'] });
    time += RECORDED_TAG_TTL_MS;
    await tags.record('shell/hello', 'latest');
    assert.deepEqual(await tags.list('shell/hello'), ['latest', 'v1']);
  });

  it('paginates with n and last as the distribution spec defines', () => {
    const all = ['a', 'b', 'c', 'd'];
    assert.deepEqual(paginate(all, undefined, undefined), { tags: all, more: false });
    assert.deepEqual(paginate(all, 2, undefined), { tags: ['a', 'b'], more: true });
    assert.deepEqual(paginate(all, 2, 'b'), { tags: ['c', 'd'], more: false });
    assert.deepEqual(paginate(all, 0, undefined), { tags: [], more: true });
  });
});
