import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compressLayer } from './compress.ts';
import { CompressionPool } from './compression-pool.ts';
import { CompressionThreads } from './compression-threads.ts';
import { storePathsTar } from './store-tar.ts';
import { collect, dir, exe, fakeStore, file, link } from './test-support.ts';
import type { FakeStore } from './test-support.ts';

describe('compression threads', () => {
  let store: FakeStore;
  let paths: string[];
  const threads = new CompressionThreads({ count: 2, nice: 7 });
  const onThreads = new CompressionPool({ threads: 2, deflateRaw: threads.deflateRaw, zstdCompress: threads.zstdCompress });
  const onLibuv = new CompressionPool({ threads: 2 });

  before(async () => {
    store = await fakeStore();
    const text = (lines: number) => Buffer.from(Array.from({ length: lines }, (_, i) => `line ${i} of the data\n`).join(''));
    paths = [
      await store.add('bbb-hello', dir({ bin: dir({ hello: exe('hello'), hi: link('hello') }) })),
      // Several gzip blocks and two zstd frames.
      await store.add('aaa-data', dir({ share: dir({ text: file(text(300_000)), zeros: file(Buffer.alloc(200_000, 3)) }) })),
    ];
  });
  after(async () => {
    await threads.close();
    await store.cleanup();
  });

  for (const compression of ['gzip', 'zstd'] as const) {
    it(`write the bytes libuv's pool writes, as ${compression}`, async () => {
      const pack = (pool: CompressionPool) => compressLayer(storePathsTar(paths, { root: store.root }), { compression, pool });
      const a = pack(onThreads);
      const b = pack(onLibuv);
      const [x, y] = await Promise.all([collect(a.stream), collect(b.stream)]);
      assert.ok(x.length > 0);
      assert.ok(x.equals(y), `${x.length} bytes on the threads, ${y.length} on libuv's pool`);
      assert.equal(await a.diffId, await b.diffId);
    });
  }

  it('run at the nice value they were given, below the event loop', async () => {
    assert.deepEqual(await threads.niceValues(), [7, 7]);
  });

  it("fail a block with zlib's error and go on compressing", async () => {
    await assert.rejects(onThreads.deflate(Buffer.from('x'), { level: 42, last: true }), /level/i);
    const ok = await onThreads.deflate(Buffer.from('hello'), { level: 6, last: true });
    assert.ok(ok.length > 0);
  });

  it('replace a thread that died; its block fails', async () => {
    const lonely = new CompressionThreads({ count: 1 });
    try {
      await new Promise<void>((resolve, reject) => lonely.deflateRaw(Buffer.from('warm'), { level: 1 }, (err) => (err ? reject(err) : resolve())));
      const running = new Promise<Error | null>((resolve) => lonely.deflateRaw(Buffer.alloc(64 << 20, 1), { level: 9 }, (err) => resolve(err)));
      // Terminating every thread stands in for one that crashed mid-block.
      const closing = lonely.close();
      assert.match(String(await running), /exited|terminated/);
      await closing;
      const again = await new Promise<Buffer>((resolve, reject) => lonely.deflateRaw(Buffer.from('again'), { level: 1 }, (err, out) => (err ? reject(err) : resolve(out))));
      assert.ok(again.length > 0);
    } finally {
      await lonely.close();
    }
  });
});
