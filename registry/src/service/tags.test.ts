import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventually } from '@nixery/test-support';
import { createLogger } from '../log/logger.ts';
import { FilesystemStorage } from '../storage/filesystem.ts';
import { countingStorage as countingStorageIn } from '../test-support/counting-storage.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { compareTags, paginate, SHARDS, shardOf, TagIndex, type DropReason } from './tags.ts';

const tempDir = tempDirs('nixery-tags-');

const countingStorage = async () => countingStorageIn(await tempDir());

/** A tag index that never flushes on its own, so each test flushes when it says so. */
function index(storage: FilesystemStorage, options: { maxRecorded?: number; lines?: string[]; dropped?: Map<DropReason, number> } = {}): TagIndex {
  return new TagIndex(storage, {
    flushIntervalMs: 3_600_000,
    ...(options.maxRecorded ? { maxRecorded: options.maxRecorded } : {}),
    log: createLogger({ write: (line) => options.lines?.push(line) }),
    onDropped: (reason, n) => options.dropped?.set(reason, (options.dropped.get(reason) ?? 0) + n),
  });
}

describe('tag index', () => {
  it('a pull touches no storage: the tag is listed at once by this process, and stored at the flush', async () => {
    const { storage, counting, calls } = await countingStorage();
    const tags = index(counting);
    for (let i = 0; i < 500; i++) tags.recordPulled('shell/hello', `t${i}`);
    tags.recordPulled('shell/hello', 'latest');
    assert.deepEqual(calls, { reads: 0, writes: 0, failWrites: false }, 'recording reads and writes nothing');
    const listed = await tags.list('shell/hello');
    assert.equal(listed.length, 501);
    assert.deepEqual(listed, [...listed].sort());
    assert.deepEqual(await index(storage).list('shell/hello'), [], 'another process sees nothing before the flush');

    await tags.flush();
    assert.equal(calls.writes, 1, 'one document write for 501 tags of one repository');
    assert.equal((await index(storage).list('shell/hello')).length, 501, 'another process lists them after it');
    assert.deepEqual(await index(storage).list('shell'), []);
  });

  it('writes each shard at most once per flush, whatever the number of tags and repositories', async () => {
    const { counting, calls } = await countingStorage();
    const tags = index(counting);
    const names = Array.from({ length: 100 }, (_, i) => `r${i}/hello`);
    for (const name of names) for (let i = 0; i < 20; i++) tags.recordPulled(name, `v${i}`);
    await tags.flush();
    const shards = new Set(names.map(shardOf)).size;
    assert.ok(shards > 1 && shards <= SHARDS);
    assert.equal(calls.writes, shards);
    // Pulls of what is stored cost nothing more; the next flush reads back what the last one wrote, and writes nothing.
    for (const name of names) tags.recordPulled(name, 'v0');
    await tags.flush();
    assert.equal(calls.writes, shards);
    await tags.flush();
    assert.equal(calls.writes, shards, 'an idle index writes nothing');
  });

  it('is bounded: at most maxRecorded tags stored and waiting; beyond that pulls are counted, not recorded', async () => {
    const { storage, counting, calls } = await countingStorage();
    const dropped = new Map<DropReason, number>();
    const lines: string[] = [];
    const maxRecorded = 4 * SHARDS;
    const tags = index(counting, { maxRecorded, dropped, lines });
    for (let i = 0; i < 1_000; i++) tags.recordPulled('hello', `t${String(i).padStart(4, '0')}`);
    assert.equal((await tags.list('hello')).length, maxRecorded, 'memory holds at most maxRecorded');
    assert.equal(dropped.get('pending_full'), 1_000 - maxRecorded);

    await tags.flush();
    const perShard = maxRecorded / SHARDS;
    assert.deepEqual(await index(storage).list('hello'), ['t0000', 't0001', 't0002', 't0003'].slice(0, perShard), 'a repository gets its shard\'s share');
    assert.equal(dropped.get('index_full'), maxRecorded - perShard);
    assert.ok(lines.some((l) => JSON.parse(l).level === 'warn' && /tag index is full/.test(JSON.parse(l).msg)), 'the bound is logged');

    const writes = calls.writes;
    for (let i = 0; i < 1_000; i++) tags.recordPulled('hello', `new${i}`);
    assert.equal(dropped.get('index_full'), maxRecorded - perShard + 1_000, 'a full shard refuses at once');
    await tags.flush();
    await tags.flush();
    assert.equal(calls.writes, writes, 'a full shard is never written again');
  });

  it('a failed flush is logged and retried at the next one; pulls never fail with it', async () => {
    const { storage, counting, calls } = await countingStorage();
    const lines: string[] = [];
    const tags = index(counting, { lines });
    calls.failWrites = true;
    tags.recordPulled('hello', 'v1');
    await tags.flush();
    tags.recordPulled('hello', 'v2');
    assert.deepEqual(await tags.list('hello'), ['v1', 'v2'], 'still listed here');
    const warning = lines.map((l) => JSON.parse(l) as { level: string; msg: string; error?: { code?: string } }).find((l) => l.level === 'warn');
    assert.match(warning?.msg ?? '', /writing pulled tags failed; they are tried again at the next flush/);
    assert.equal(warning?.error?.code, 'EROFS');

    calls.failWrites = false;
    await tags.flush();
    assert.deepEqual(await index(storage).list('hello'), ['v1', 'v2']);
  });

  it("writes again, at the next flush, the tags another replica's write replaced", async () => {
    const { storage } = await countingStorage();
    const a = index(storage);
    a.recordPulled('hello', 'from-a');
    await a.flush();
    // Replica B read the shard before A's write and wrote it after: A's tag is gone.
    await storage.putDocument(`pulled-tags/${shardOf('hello')}`, { repositories: { hello: ['from-b'] } });
    assert.deepEqual(await index(storage).list('hello'), ['from-b']);
    await a.flush();
    assert.deepEqual(await index(storage).list('hello'), ['from-a', 'from-b']);
  });

  it('flushes on its own after the interval, and at close', async () => {
    const { storage } = await countingStorage();
    const tags = new TagIndex(storage, { flushIntervalMs: 50 });
    tags.recordPulled('hello', 'soon');
    await eventually('the timer to flush', async () => ((await index(storage).list('hello')).includes('soon') ? true : undefined), 5_000, 20);
    const closing = new TagIndex(storage, { flushIntervalMs: 3_600_000 });
    closing.recordPulled('hello', 'at-close');
    await closing.close();
    assert.deepEqual(await index(storage).list('hello'), ['at-close', 'soon']);
  });

  it('writes pushed tags through at once, listed by every process', async () => {
    const { storage } = await countingStorage();
    const tags = index(storage);
    await Promise.all(['v2', 'latest', 'v1', 'latest'].map((t) => tags.recordPushed('toolbox', t)));
    assert.deepEqual(await index(storage).list('toolbox'), ['latest', 'v1', 'v2']);
    tags.recordPulled('toolbox', 'v1');
    tags.recordPulled('toolbox', 'pulled');
    assert.deepEqual(await tags.list('toolbox'), ['latest', 'pulled', 'v1', 'v2'], 'pushed and pulled tags, once each');
  });

  it('paginates with n and last as the distribution spec defines', () => {
    const all = ['a', 'b', 'c', 'd'];
    assert.deepEqual(paginate(all, undefined, undefined), { tags: all, more: false });
    assert.deepEqual(paginate(all, 2, undefined), { tags: ['a', 'b'], more: true });
    assert.deepEqual(paginate(all, 2, 'b'), { tags: ['c', 'd'], more: false });
    assert.deepEqual(paginate(all, 0, undefined), { tags: [], more: true });
    assert.deepEqual(paginate(all, undefined, 'bb'), { tags: ['c', 'd'], more: false }, 'last need not be a tag of the list');
  });

  it("lists tags in the spec's lexical order, case-insensitive, and pages in that order", async () => {
    const { storage } = await countingStorage();
    const tags = index(storage);
    for (const t of ['b', 'A', 'latest', 'V2', 'v1', '1.0', 'a', 'Latest']) await tags.recordPushed('toolbox', t);
    tags.recordPulled('toolbox', 'B_pulled');
    const expected = ['1.0', 'A', 'a', 'b', 'B_pulled', 'Latest', 'latest', 'v1', 'V2'];
    assert.deepEqual(await tags.list('toolbox'), expected);
    assert.deepEqual([...expected].reverse().sort(compareTags), expected, 'a total order');
    // Walking the pages with n and last yields the whole list once, in order.
    const walked: string[] = [];
    for (let last: string | undefined, more = true; more; ) {
      const page = await tags.page('toolbox', 2, last);
      walked.push(...page.tags);
      more = page.more;
      last = page.tags.at(-1);
    }
    assert.deepEqual(walked, expected);
  });

  it('removes deleted pushed tags from the listing of every process; a tag also pulled stays listed', async () => {
    const { storage } = await countingStorage();
    const tags = index(storage);
    for (const t of ['v1', 'v2', 'v3', 'built']) await tags.recordPushed('shell/hello', t);
    tags.recordPulled('shell/hello', 'built');
    await tags.flush();
    await tags.removePushed('shell/hello', ['v1', 'v3', 'built', 'never-pushed']);
    assert.deepEqual(await tags.pushed('shell/hello'), ['v2']);
    assert.deepEqual(await index(storage).list('shell/hello'), ['built', 'v2'], 'a pull of shell/hello:built builds it again: it stays listed');
  });
});
