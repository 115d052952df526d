import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { paginate, TagIndex } from './tag-index.ts';

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

  it('paginates with n and last as the distribution spec defines', () => {
    const all = ['a', 'b', 'c', 'd'];
    assert.deepEqual(paginate(all, undefined, undefined), { tags: all, more: false });
    assert.deepEqual(paginate(all, 2, undefined), { tags: ['a', 'b'], more: true });
    assert.deepEqual(paginate(all, 2, 'b'), { tags: ['c', 'd'], more: false });
    assert.deepEqual(paginate(all, 0, undefined), { tags: [], more: true });
  });
});
