import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readlink, truncate, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { InvalidStorePathError, StoreFileChangedError, StoreReadError } from './errors.ts';
import { storePathsTar } from './store-tar.ts';
import { collect, dir, exe, fakeStore, file, link, readTar } from './test-support.ts';
import type { FakeStore } from './test-support.ts';
import type { Readable } from 'node:stream';

/** What this process has open (Linux). */
async function openFds(): Promise<string[]> {
  const fds = await readdir('/proc/self/fd');
  return Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
}

/** Reads and drops `bytes` from a paused stream, leaving it paused. */
async function readAtLeast(stream: Readable, bytes: number): Promise<void> {
  // The tar thread may fail the stream before the test reads on; the reader still gets the error.
  stream.on('error', () => {});
  let seen = 0;
  while (seen < bytes) {
    const chunk = stream.read() as Buffer | null;
    if (chunk === null) await new Promise((resolve) => stream.once('readable', resolve));
    else seen += chunk.length;
  }
}

const longName = 'n'.repeat(120);
const FIXED_DIGEST = 'efdc5b4589d98a132e2cea3d02156b1d26b578d2911bff740d4cbc2fa5cd1818';
const deepDirs = ['d'.repeat(90), 'e'.repeat(90), 'f'.repeat(90)];

describe('storePathsTar', () => {
  let store: FakeStore;
  let hello: string;
  let lib: string;
  let single: string;

  before(async () => {
    store = await fakeStore();
    hello = await store.add(
      'bbb-hello-1.0',
      dir({
        bin: dir({ hello: exe('#!/bin/sh\necho hello\n'), hi: link('hello') }),
        share: dir({
          empty: dir({}),
          'empty-file': file(''),
          [longName]: file('long'),
          [deepDirs[0]!]: dir({ [deepDirs[1]!]: dir({ [deepDirs[2]!]: file('deep') }) }),
          'long-link': link('/nix/store/' + 'x'.repeat(150)),
        }),
        // Upper case sorts before lower case, and names are compared as UTF-8
        // bytes: U+FF5E (EF BD 9E) before U+1F600 (F0 9F 98 80), the reverse of UTF-16 order.
        order: dir({ b: file('b'), B: file('B'), 'a-c': file('a-c'), a: dir({ z: file('z') }), '\u{1F600}': file('x'), '\uFF5E': file('y') }),
      }),
    );
    lib = await store.add('aaa-lib', dir({ lib: dir({ 'libfoo.so': file(Buffer.alloc(3000, 7)) }) }));
    single = await store.add('ccc-single-file', file('just a file', 0o555));
  });
  after(() => store.cleanup());

  it('gives the same bytes for the same paths in any order, with duplicates', async () => {
    const a = await collect(storePathsTar([hello, lib, single], { root: store.root }));
    const b = await collect(storePathsTar([single, hello, lib, hello, single], { root: store.root }));
    assert.ok(a.length > 0);
    assert.ok(a.equals(b));
  });

  it('lists nix/, nix/store/, then every path depth first with siblings in byte order', async () => {
    const records = await readTar(storePathsTar([single, hello, lib], { root: store.root }));
    const names = records.map((r) => r.header.name);
    const h = 'nix/store/bbb-hello-1.0';
    assert.deepEqual(names.slice(0, 5), ['nix/', 'nix/store/', 'nix/store/aaa-lib/', 'nix/store/aaa-lib/lib/', 'nix/store/aaa-lib/lib/libfoo.so']);
    assert.deepEqual(
      names.filter((n) => n.startsWith(`${h}/order/`)),
      [`${h}/order/`, `${h}/order/B`, `${h}/order/a/`, `${h}/order/a/z`, `${h}/order/a-c`, `${h}/order/b`, `${h}/order/\uFF5E`, `${h}/order/\u{1F600}`],
    );
    assert.equal(names.at(-1), 'nix/store/ccc-single-file');
    assert.equal(new Set(names).size, names.length);
  });

  it('writes fixed ownership and time, and the modes and link targets from the store', async () => {
    const records = await readTar(storePathsTar([hello, single], { root: store.root }));
    for (const { header } of records) {
      assert.equal(header.mtime.getTime(), 0, header.name);
      assert.equal(header.uid, 0);
      assert.equal(header.gid, 0);
      assert.equal(header.uname, '');
      assert.equal(header.gname, '');
    }
    const byName = new Map(records.map((r) => [r.header.name, r]));
    const h = 'nix/store/bbb-hello-1.0';
    assert.equal(byName.get('nix/')?.header.mode, 0o755);
    assert.equal(byName.get('nix/store/')?.header.mode, 0o755);
    assert.equal(byName.get(`${h}/`)?.header.type, 'directory');
    assert.equal(byName.get(`${h}/`)?.header.mode, 0o555);
    assert.equal(byName.get(`${h}/bin/hello`)?.header.mode, 0o555);
    assert.equal(byName.get(`${h}/share/empty-file`)?.header.mode, 0o444);
    assert.equal(byName.get(`${h}/share/empty-file`)?.header.size, 0);
    assert.equal(byName.get(`${h}/share/empty/`)?.header.type, 'directory');
    assert.equal(byName.get('nix/store/ccc-single-file')?.header.mode, 0o555);
    const hi = byName.get(`${h}/bin/hi`)?.header;
    assert.equal(hi?.type, 'symlink');
    assert.equal(hi?.linkname, 'hello');
    assert.equal(byName.get(`${h}/share/long-link`)?.header.linkname, '/nix/store/' + 'x'.repeat(150));
  });

  it('keeps names longer than 100 bytes, and file contents', async () => {
    const records = await readTar(storePathsTar([hello, lib, single], { root: store.root }));
    const content = new Map(records.map((r) => [r.header.name, r.content.toString('latin1')]));
    const h = 'nix/store/bbb-hello-1.0';
    assert.equal(content.get(`${h}/share/${longName}`), 'long');
    const deep = `${h}/share/${deepDirs.join('/')}`;
    assert.ok(deep.length > 255);
    assert.equal(content.get(deep), 'deep');
    assert.equal(content.get(`${h}/bin/hello`), '#!/bin/sh\necho hello\n');
    assert.equal(content.get('nix/store/aaa-lib/lib/libfoo.so'), Buffer.alloc(3000, 7).toString('latin1'));
    assert.equal(content.get('nix/store/ccc-single-file'), 'just a file');
  });

  it('rejects paths that are not top-level store paths, before reading anything', () => {
    for (const bad of ['/nix/store', '/nix/store/', '/tmp/x', `${hello}/bin`, '/nix/store/..', 'nix/store/x']) {
      assert.throws(() => storePathsTar([bad], { root: store.root }), InvalidStorePathError, bad);
    }
  });

  it('errors the stream for a store path that does not exist', async () => {
    const missing = '/nix/store/zzz-missing';
    await assert.rejects(collect(storePathsTar([hello, missing], { root: store.root })), (err: unknown) => {
      assert.ok(err instanceof StoreReadError);
      assert.equal(err.fsPath, store.fsPath(missing));
      return true;
    });
  });

  it('errors the stream when a file disappears while packing', async () => {
    // `a` is far larger than the blocks filled ahead (1 MiB), so `b` is not listed until most of `a` is read.
    const big = await store.add('ddd-big', dir({ a: file(Buffer.alloc(16 << 20, 1)), b: file('gone soon') }));
    const tar = storePathsTar([big], { root: store.root });
    // Once `a`'s contents flow, `b` has been listed but not yet looked at or opened.
    await readAtLeast(tar, 64 * 1024);
    await unlink(store.fsPath(`${big}/b`));
    await assert.rejects(collect(tar), StoreReadError);
  });

  it('errors the stream when a file shrinks while packing', async () => {
    // Far larger than the blocks filled ahead: most of it is read after the truncation.
    const shrinking = await store.add('eee-shrinking', dir({ a: file(Buffer.alloc(16 << 20, 1)) }));
    const tar = storePathsTar([shrinking], { root: store.root });
    await readAtLeast(tar, 64 * 1024);
    await truncate(store.fsPath(`${shrinking}/a`), 1000);
    await assert.rejects(collect(tar), StoreFileChangedError);
  });

  it('stops reading the store when the consumer destroys the stream', async () => {
    const big = await store.add('fff-big', dir({ a: file(Buffer.alloc(16 << 20, 1)), b: file('next'), c: file('after') }));
    const tar = storePathsTar([big], { root: store.root });
    await readAtLeast(tar, 64 * 1024);
    tar.destroy();
    await new Promise((resolve) => tar.once('close', resolve));
    assert.equal(tar.destroyed, true);
    // The producer notices, stops and closes the file it was reading.
    // The producer notices, stops and closes the files it was reading, and those opened ahead.
    const under = store.fsPath(big) + '/';
    const inStore = async () => (await openFds()).filter((fd) => fd.startsWith(under));
    for (let i = 0; i < 50 && (await inStore()).length > 0; i++) await sleep(10);
    assert.deepEqual(await inStore(), []);
  });

  it('closes the file it was reading when the layer fails', async () => {
    const files: Record<string, ReturnType<typeof file>> = { a: file(Buffer.alloc(16 << 20, 1)) };
    for (let i = 0; i < 30; i++) files[`f${String(i).padStart(2, '0')}`] = file(Buffer.alloc(300_000 + i, i));
    const many = await store.add('hhh-many', dir(files));
    const under = store.fsPath(many) + '/';
    const tar = storePathsTar([many], { root: store.root });
    await readAtLeast(tar, 64 * 1024);
    await truncate(store.fsPath(`${many}/a`), 10);
    await assert.rejects(collect(tar), (err: unknown) => {
      assert.ok(err instanceof StoreFileChangedError);
      assert.equal(err.fsPath, store.fsPath(`${many}/a`));
      assert.equal(err.expectedSize, 16 << 20);
      return true;
    });
    const inStore = async () => (await openFds()).filter((fd) => fd.startsWith(under));
    for (let i = 0; i < 50 && (await inStore()).length > 0; i++) await sleep(10);
    assert.deepEqual(await inStore(), []);
  });

  it('gives the bytes tar-stream wrote before the tar thread existed', async () => {
    // Fixed at commit 234c549, when tar-stream encoded the tar on the event loop.
    const small = await collect(storePathsTar([hello, lib, single], { root: store.root }));
    assert.equal(createHash('sha256').update(small).digest('hex'), FIXED_DIGEST);
  });

  it('gives the same bytes however the layers are interleaved on the tar thread', async () => {
    const files: Record<string, ReturnType<typeof file>> = {};
    for (let i = 0; i < 60; i++) files[`f${String(i).padStart(2, '0')}`] = file(Buffer.alloc((i * 37_111) % 700_000, i), i % 2 ? 0o555 : 0o444);
    files['big'] = file(Buffer.alloc(5 << 20, 9));
    files['sub'] = dir({ x: file('x'), l: link('../big'), e: file('') });
    const mixed = await store.add('ggg-mixed', dir(files));
    const layers = [[hello, lib, single, mixed], [mixed], [hello], [lib, mixed]];
    const alone: Buffer[] = [];
    for (const paths of layers) alone.push(await collect(storePathsTar(paths, { root: store.root })));
    const together = await Promise.all(layers.map((paths) => collect(storePathsTar(paths, { root: store.root }))));
    for (const [i, tar] of together.entries()) assert.ok(tar.equals(alone[i]!), `layer ${i}`);
  });
});
