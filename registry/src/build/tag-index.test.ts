import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { paginate, TagIndex } from './tag-index.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await fs.rm(dir, { recursive: true, force: true });
});

async function index(): Promise<TagIndex> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-tags-'));
  dirs.push(dir);
  const storage = new FilesystemStorage(dir);
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
