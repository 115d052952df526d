import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crc32, gunzipSync, zstdCompress, zstdDecompressSync } from 'node:zlib';
import { runSync } from '../test-support/programs.ts';
import { compressLayer } from './compress.ts';
import { CompressionPool } from './compression-pool.ts';
import type { ZstdCompress } from './compression-pool.ts';
import { CompressBlockError } from './errors.ts';
import { GZIP_CUT } from './layer-tar.ts';
import type { BlockCut, TarBlocks } from './layer-tar.ts';
import { FRAME_SIZE, zstdCut } from './parallel-zstd.ts';
import { storePathsTar } from './store-tar.ts';
import { collect, dir, exe, fakeStore, file, link } from './test-support.ts';
import type { FakeStore } from './test-support.ts';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** Offsets of the zstd frames in `bytes`, read from the frame headers (content size present, checksum on). */
function frameStarts(bytes: Buffer): number[] {
  const starts: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    assert.ok(bytes.subarray(at, at + 4).equals(ZSTD_MAGIC), `a frame starts at ${at}`);
    starts.push(at);
    // Walk the frame's blocks: header descriptor, optional window byte, content size, then blocks.
    const descriptor = bytes[at + 4]!;
    const singleSegment = (descriptor >> 5) & 1;
    const sizeFieldFlag = descriptor >> 6;
    const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][sizeFieldFlag]!;
    const checksum = (descriptor >> 2) & 1;
    let p = at + 5 + (singleSegment ? 0 : 1) + sizeBytes;
    for (;;) {
      const header = bytes.readUIntLE(p, 3);
      const lastBlock = header & 1;
      const type = (header >> 1) & 3;
      const size = header >> 3;
      p += 3 + (type === 1 ? 1 : size);
      if (lastBlock) break;
    }
    at = p + (checksum ? 4 : 0);
  }
  return starts;
}

describe('zstd layers', () => {
  let store: FakeStore;
  let paths: string[];
  let big: string;

  before(async () => {
    store = await fakeStore();
    // Compressible but not trivially: a repeating pattern with a counter in it.
    const text = (lines: number) => Buffer.from(Array.from({ length: lines }, (_, i) => `line ${i} of the data\n`).join(''));
    paths = [
      await store.add('bbb-hello', dir({ bin: dir({ hello: exe('hello'), hi: link('hello') }) })),
      await store.add('aaa-data', dir({ share: dir({ text: file(text(5000)), zeros: file(Buffer.alloc(200_000, 3)) }) })),
    ];
    // Three frames and a bit.
    big = await store.add('ccc-big', dir({ share: dir({ text: file(text(480_000)) }) }));
  });
  after(() => store.cleanup());

  it('compresses to the same tar the gzip layer holds, with the same diff ID', async () => {
    const zstd = compressLayer(storePathsTar(paths, { root: store.root }), { compression: 'zstd' });
    const gzip = compressLayer(storePathsTar(paths, { root: store.root }));
    const [z, g] = await Promise.all([collect(zstd.stream), collect(gzip.stream)]);
    const tar = gunzipSync(g);
    assert.ok(z.subarray(0, 4).equals(ZSTD_MAGIC));
    assert.ok(zstdDecompressSync(z).equals(tar));
    assert.equal(await zstd.diffId, sha256(tar));
    assert.equal(await zstd.diffId, await gzip.diffId);
    assert.equal(await zstd.uncompressedSize, tar.length);
    assert.ok(z.length < g.length, `zstd ${z.length} bytes, gzip ${g.length}`);
  });

  it("spares the tar thread gzip's CRC-32: a zstd cut's summary has none, a gzip cut's has the tar's", async () => {
    const tar = await collect(storePathsTar(paths, { root: store.root }));
    const drain = async (blocks: TarBlocks) => {
      for (;;) {
        const block = await blocks.next();
        block.release();
        if (block.last) return blocks.summary;
      }
    };
    const summaryOf = (cut: BlockCut) => drain(storePathsTar(paths, { root: store.root }).blocks(cut));
    const zstd = await summaryOf(zstdCut(new CompressionPool({ threads: 2 })));
    const gzip = await summaryOf(GZIP_CUT);
    assert.deepEqual(zstd, { digest: sha256(tar), crc: 0, size: tar.length });
    assert.deepEqual(gzip, { digest: sha256(tar), crc: crc32(tar), size: tar.length });
    assert.notEqual(crc32(tar), 0);
  });

  it('writes one independent frame per 4 MiB of tar, which the zstd program reads whole', async () => {
    const tar = await collect(storePathsTar([big], { root: store.root }));
    assert.ok(tar.length > 2 * FRAME_SIZE, 'the layer spans several frames');
    const z = await collect(compressLayer(storePathsTar([big], { root: store.root }), { compression: 'zstd' }).stream);
    const starts = frameStarts(z);
    assert.equal(starts.length, Math.ceil((tar.length + 1) / FRAME_SIZE));
    for (const at of starts) {
      // Frame_Content_Size present: a size field, or a single segment (whose size field is implied).
      const descriptor = z[at + 4]!;
      assert.ok(descriptor >> 6 > 0 || ((descriptor >> 5) & 1) === 1, `the frame at ${at} states its content size`);
      assert.equal((descriptor >> 2) & 1, 1, `the frame at ${at} has a checksum`);
      // Single segment: the window is the whole frame (compressed in one pass), so a decoder needs
      // no window beyond the frame's own content.
      assert.equal((descriptor >> 5) & 1, 1, `the frame at ${at} is a single segment`);
    }
    const file = path.join(store.root, 'layer.tar.zst');
    await writeFile(file, z);
    const decompressed = runSync('zstd', ['-d', '-c', file]);
    assert.equal(decompressed.status, 0, decompressed.stderr.toString());
    assert.ok(decompressed.stdout.equals(tar));
    const listed = runSync('tar', ['--zstd', '-tf', file]);
    assert.equal(listed.status, 0, listed.stderr.toString());
    assert.match(listed.stdout.toString(), /nix\/store\/ccc-big\/share\/text/);
  });

  it('gives the same bytes whatever the order of paths and the number of threads', async () => {
    const outputs: Buffer[] = [];
    const all = [...paths, big];
    for (const [order, threads] of [[all, 1], [[...all].reverse(), 3], [all, 2]] as const) {
      const layer = compressLayer(storePathsTar([...order], { root: store.root }), { compression: 'zstd', pool: new CompressionPool({ threads }) });
      outputs.push(await collect(layer.stream));
    }
    assert.ok(outputs[1]!.equals(outputs[0]!));
    assert.ok(outputs[2]!.equals(outputs[0]!));
  });

  it('honours the level', async () => {
    const fast = compressLayer(storePathsTar(paths, { root: store.root }), { compression: 'zstd', level: 1 });
    const small = compressLayer(storePathsTar(paths, { root: store.root }), { compression: 'zstd', level: 19 });
    const [a, b] = await Promise.all([collect(fast.stream), collect(small.stream)]);
    assert.ok(b.length < a.length, `level 19 ${b.length} bytes, level 1 ${a.length}`);
    assert.ok(zstdDecompressSync(a).equals(zstdDecompressSync(b)));
  });

  it('fails the stream and the diff ID when a frame cannot be compressed', async () => {
    let calls = 0;
    const failing: ZstdCompress = (input, options, callback) => {
      if (++calls === 2) setImmediate(() => callback(new Error('out of memory'), Buffer.alloc(0)));
      else zstdCompress(input, options, callback);
    };
    const layer = compressLayer(storePathsTar([big], { root: store.root }), { compression: 'zstd', pool: new CompressionPool({ threads: 2, zstdCompress: failing }) });
    await assert.rejects(collect(layer.stream), (err: unknown) => err instanceof CompressBlockError && err.offset === FRAME_SIZE && /zstd.*out of memory/.test(err.message));
    await assert.rejects(layer.diffId);
  });

  it('refuses an unknown compression', () => {
    assert.throws(() => compressLayer(storePathsTar(paths, { root: store.root }), { compression: 'lz4' as 'zstd' }), /unknown layer compression "lz4"/);
  });
});
