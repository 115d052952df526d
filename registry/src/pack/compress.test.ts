import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, readdir, readlink, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gunzipSync } from 'node:zlib';
import { runSync } from '../test-support/programs.ts';
import { compressLayer } from './compress.ts';
import { customisationTar } from './customisation.ts';
import { gzipFromZstd } from './gzip-stream.ts';
import { PackError, StoreReadError } from './errors.ts';
import type { LayerTar } from './layer-tar.ts';
import { storePathsTar } from './store-tar.ts';
import { collect, dir, exe, fakeStore, file, gzipStream, hashingPassThrough, link } from './test-support.ts';
import type { FakeStore } from './test-support.ts';

setFlagsFromString('--expose-gc');
/** A full collection, so memory figures count only what is still referenced. */
const collectGarbage = runInNewContext('gc') as () => void;

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('compressLayer', () => {
  let store: FakeStore;
  let paths: string[];

  before(async () => {
    store = await fakeStore();
    paths = [
      await store.add('bbb-hello', dir({ bin: dir({ hello: exe('hello'), hi: link('hello') }) })),
      await store.add('aaa-data', dir({ share: dir({ [`${'long-'.repeat(30)}name`]: file(Buffer.alloc(200_000, 3)) }) })),
    ];
  });
  after(() => store.cleanup());

  it('gzips deterministically, with the diff ID and size of the uncompressed tar', async () => {
    const tar = await collect(storePathsTar(paths, { root: store.root }));
    const one = compressLayer(storePathsTar(paths, { root: store.root }));
    const two = compressLayer(storePathsTar([...paths].reverse(), { root: store.root }));
    const [gzOne, gzTwo] = await Promise.all([collect(one.stream), collect(two.stream)]);
    assert.ok(gzOne.equals(gzTwo));
    assert.ok(gunzipSync(gzOne).equals(tar));
    // mtime 0 in the gzip header; otherwise two runs a second apart would differ.
    assert.equal(gzOne.readUInt32LE(4), 0);
    assert.equal(await one.diffId, sha256(tar));
    assert.equal(await two.diffId, sha256(tar));
    assert.equal(await one.uncompressedSize, tar.length);
  });

  it('gives the tar thread\'s blocks the bytes the reference gives any tar stream, up to a tar of whole blocks', async () => {
    // nix/, nix/store/, the directory and the file's header are 4 records, the end 2: 256 KiB in all.
    const exact = await store.add('ccc-exact', dir({ f: file(Buffer.alloc(2 * 128 * 1024 - 6 * 512, 7)) }));
    for (const layer of [paths, [exact], [...paths, exact]]) {
      const tar = await collect(storePathsTar(layer, { root: store.root }));
      const fromBlocks = compressLayer(storePathsTar(layer, { root: store.root }));
      const fromStream = gzipStream(Readable.from([tar]));
      const [a, b] = await Promise.all([collect(fromBlocks.stream), collect(fromStream.stream)]);
      assert.ok(a.equals(b), `${layer.length} paths, tar of ${tar.length} bytes`);
      assert.equal(await fromBlocks.diffId, sha256(tar));
      assert.equal(await fromBlocks.uncompressedSize, tar.length);
    }
    assert.equal((await collect(storePathsTar([exact], { root: store.root }))).length, 2 * 128 * 1024);
  });

  it('stops reading the store when the gzip stream is destroyed', async () => {
    const big = await store.add('ddd-stop', dir({ a: file(Buffer.alloc(32 << 20, 5)), b: file('after') }));
    const under = store.fsPath(big) + '/';
    const layer = compressLayer(storePathsTar([big], { root: store.root }), { level: 1 });
    for await (const chunk of layer.stream) {
      if ((chunk as Buffer).length > 0) break;
    }
    assert.equal(layer.stream.destroyed, true);
    await assert.rejects(layer.diffId);
    const inStore = async () => {
      const fds = await readdir('/proc/self/fd');
      const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
      return targets.filter((t) => t.startsWith(under));
    };
    for (let i = 0; i < 50 && (await inStore()).length > 0; i++) await sleep(10);
    assert.deepEqual(await inStore(), []);
  });

  it('honours the compression level', async () => {
    const stored = compressLayer(storePathsTar(paths, { root: store.root }), { level: 0 });
    const fast = compressLayer(storePathsTar(paths, { root: store.root }), { level: 1 });
    const [a, b] = await Promise.all([collect(stored.stream), collect(fast.stream)]);
    assert.ok(a.length > b.length);
    assert.equal(await stored.diffId, await fast.diffId);
  });

  it('errors the stream and rejects the promises when the tar fails', async () => {
    const layer = compressLayer(storePathsTar([...paths, '/nix/store/ccc-missing'], { root: store.root }));
    await assert.rejects(collect(layer.stream), StoreReadError);
    await assert.rejects(layer.diffId, StoreReadError);
    await assert.rejects(layer.uncompressedSize, StoreReadError);
  });

  it('takes only a layer tar that nobody has read yet', async () => {
    // A plain stream, as an untyped caller could pass one.
    assert.throws(() => compressLayer(Readable.from([Buffer.alloc(1024)]) as unknown as LayerTar), PackError);
    const read = storePathsTar(paths, { root: store.root });
    await collect(read);
    assert.throws(() => compressLayer(read), PackError);
    const destroyed = storePathsTar(paths, { root: store.root });
    destroyed.destroy();
    assert.throws(() => compressLayer(destroyed), PackError);
  });

  it('is readable by GNU tar', async () => {
    const probe = runSync('tar', ['--version']);
    assert.ok(probe.status === 0 && probe.stdout.toString().includes('GNU tar'), 'GNU tar is installed (Debian: essential; scripts/setup.sh runs on Debian)');
    const customisation = await store.add('ccc-env', dir({ bin: dir({ env: exe('env') }) }));
    for (const [label, tar] of [
      ['store paths', storePathsTar(paths, { root: store.root })],
      ['customisation', customisationTar({ contents: [...paths, customisation], closure: paths }, { root: store.root })],
    ] as const) {
      const gz = path.join(store.root, 'layer.tar.gz');
      await writeFile(gz, await collect(compressLayer(tar).stream));
      const listed = runSync('tar', ['-tvzf', gz, '--numeric-owner']);
      assert.equal(listed.status, 0, `${label}: ${listed.stderr}`);
      assert.equal(listed.stderr, '', label);
      const listing = listed.stdout.toString();
      const lines = listing.trim().split('\n');
      for (const line of lines) assert.match(line, / 0\/0 .* 1970-01-01 00:00 /, label);
      if (label === 'store paths') {
        assert.ok(lines.some((l) => l.includes(`nix/store/aaa-data/share/${'long-'.repeat(30)}name`)));
        assert.ok(lines.some((l) => /^lrwxrwxrwx .* nix\/store\/bbb-hello\/bin\/hi -> hello$/.test(l)));
      } else {
        assert.ok(lines.some((l) => /^drwxrwxrwt .* tmp\/$/.test(l)), listing);
        assert.ok(lines.some((l) => l.endsWith('usr/bin/env -> /nix/store/ccc-env/bin/env')), listing);
      }
    }
  });

  it('packs a 200 MB file without holding it in memory', async () => {
    const size = 200 * 1024 * 1024;
    const big = await store.add('ddd-big', dir({}, 0o755));
    // Sparse: costs no disk, but is read back as 200 MB like any file.
    const handle = await open(path.join(store.fsPath(big), 'blob'), 'w');
    await handle.truncate(size);
    await handle.close();

    // What is alive, not RSS: buffers already dropped linger until V8 collects them (it waits
    // for about 64 MiB of external garbage), which says nothing about what packing holds.
    const live = () => {
      collectGarbage();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const before = live();
    let peak = before;
    const layer = compressLayer(storePathsTar([big], { root: store.root }), { level: 1 });
    let compressed = 0;
    let chunks = 0;
    for await (const chunk of layer.stream) {
      compressed += (chunk as Buffer).length;
      if (++chunks % 16 === 0) peak = Math.max(peak, live());
    }
    assert.ok(chunks >= 64, `enough samples (${chunks} chunks)`);
    assert.ok(compressed > 0);
    assert.ok((await layer.uncompressedSize) > size);
    const growth = (peak - before) / 1024 / 1024;
    assert.ok(growth < 32, `live memory grew by ${growth.toFixed(1)} MiB while packing 200 MiB`);
  });
});

describe('gzipStream (the reference, gzip-stream.ts)', () => {
  it('errors the stream when the source fails after some data', async () => {
    const failure = new Error('source broke');
    const source = new Readable({ read() {} });
    const layer = gzipStream(source);
    source.push(Buffer.alloc(10_000, 1));
    setImmediate(() => source.destroy(failure));
    await assert.rejects(collect(layer.stream), (err) => err === failure);
    await assert.rejects(layer.diffId, (err) => err === failure);
  });
});

describe('gzipFromZstd (a zstd layer as the gzip layer of the same tar)', () => {
  let store: FakeStore;
  before(async () => {
    store = await fakeStore();
  });
  after(() => store.cleanup());

  it('gives the bytes a gzip pack of the tar gives, across zstd frames and gzip blocks, with the diff ID', async () => {
    // Over two 4 MiB zstd frames and many 128 KiB gzip blocks, part of it incompressible.
    const noise = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < noise.length; i += 32) createHash('sha256').update(String(i)).digest().copy(noise, i);
    const big = await store.add('ddd-big', dir({ noise: file(noise), zeros: file(Buffer.alloc(6 * 1024 * 1024 + 12_345, 0)) }));
    const tar = await collect(storePathsTar([big], { root: store.root }));
    const zstd = await collect(compressLayer(storePathsTar([big], { root: store.root }), { compression: 'zstd' }).stream);
    const gzip = await collect(compressLayer(storePathsTar([big], { root: store.root }), { compression: 'gzip' }).stream);
    const transcoded = gzipFromZstd(Readable.from([zstd.subarray(0, 1000), zstd.subarray(1000)]));
    const bytes = await collect(transcoded.stream);
    assert.ok(bytes.equals(gzip), 'byte for byte the gzip layer');
    assert.equal(await transcoded.diffId, sha256(tar));
  });

  it('fails the stream and the diff ID on a corrupt zstd stream', async () => {
    const layer = gzipFromZstd(Readable.from([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5, 6, 7, 8])]));
    await assert.rejects(collect(layer.stream));
    await assert.rejects(layer.diffId);
  });
});

describe('hashingPassThrough', () => {
  it('passes bytes through and resolves their digest and size', async () => {
    const { stream, result } = hashingPassThrough();
    const out = collect(stream);
    stream.end(Buffer.from('hello'));
    assert.equal((await out).toString(), 'hello');
    assert.deepEqual(await result, { digest: sha256(Buffer.from('hello')), size: 5 });
  });

  it('rejects when destroyed before the end', async () => {
    const { stream, result } = hashingPassThrough();
    stream.write(Buffer.from('partial'));
    stream.destroy();
    await assert.rejects(result);
  });
});
