import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { customisationTar } from './customisation.ts';
import { InvalidStorePathError, StoreReadError } from './errors.ts';
import { collect, dir, exe, fakeStore, file, link, readTar } from './test-support.ts';
import type { FakeStore, TarRecord } from './test-support.ts';

function summary(records: TarRecord[]): Map<string, string> {
  return new Map(
    records.map(({ header }) => [
      header.name,
      header.type === 'symlink' ? `-> ${header.linkname}` : `${header.type} ${header.mode.toString(8)}`,
    ]),
  );
}

describe('customisationTar', () => {
  let store: FakeStore;
  let hello: string;
  let coreutils: string;
  let otherHello: string;
  let docs: string;
  let singleFile: string;
  let envInClosure: string;
  let laterEnvInClosure: string;

  before(async () => {
    store = await fakeStore();
    hello = await store.add(
      'bbb-hello',
      dir({
        bin: dir({ hello: exe('hello'), 'hello-alias': link('hello') }),
        share: dir({ man: dir({ man1: dir({ 'hello.1': file('hello(1)') }) }) }),
        // A file where another package has a directory: the directory wins.
        lib: file('not a dir'),
      }),
    );
    otherHello = await store.add(
      'aaa-other-hello',
      dir({ bin: dir({ hello: exe('other'), other: exe('other') }), lib: dir({ 'libother.so': file('so') }) }),
    );
    coreutils = await store.add('ccc-coreutils', dir({ bin: dir({ env: exe('env'), ls: exe('ls') }) }));
    docs = await store.add('ddd-docs', dir({ share: dir({ doc: dir({ 'readme.txt': file('docs') }) }) }));
    singleFile = await store.add('eee-single-file', file('a single file'));
    envInClosure = await store.add('fff-busybox', dir({ bin: dir({ env: link('busybox'), busybox: exe('bb') }) }));
    laterEnvInClosure = await store.add('ggg-toybox', dir({ bin: dir({ env: exe('toybox') }) }));
  });
  after(() => store.cleanup());

  const pack = (contents: string[], closure: string[] = contents) =>
    customisationTar({ contents, closure }, { root: store.root });

  it('links every non-directory to its absolute store path under real directories', async () => {
    const records = await readTar(pack([hello, docs]));
    const entries = summary(records);
    assert.equal(entries.get('bin/'), 'directory 755');
    assert.equal(entries.get('bin/hello'), `-> ${hello}/bin/hello`);
    // The package's own symlink is linked to, not copied, so relative targets keep working.
    assert.equal(entries.get('bin/hello-alias'), `-> ${hello}/bin/hello-alias`);
    assert.equal(entries.get('share/'), 'directory 755');
    assert.equal(entries.get('share/man/man1/'), 'directory 755');
    assert.equal(entries.get('share/man/man1/hello.1'), `-> ${hello}/share/man/man1/hello.1`);
    assert.equal(entries.get('share/doc/readme.txt'), `-> ${docs}/share/doc/readme.txt`);
    assert.equal(entries.get('lib'), `-> ${hello}/lib`);
    for (const { header } of records) {
      assert.equal(header.mtime.getTime(), 0);
      assert.equal(header.uid, 0);
      assert.equal(header.gid, 0);
      assert.equal(header.size, 0);
    }
  });

  it('resolves conflicts: the first package wins, and a directory beats a file', async () => {
    const first = summary(await readTar(pack([hello, otherHello])));
    assert.equal(first.get('bin/hello'), `-> ${hello}/bin/hello`);
    assert.equal(first.get('bin/other'), `-> ${otherHello}/bin/other`);
    assert.equal(first.get('lib/'), 'directory 755');
    assert.equal(first.get('lib/libother.so'), `-> ${otherHello}/lib/libother.so`);
    assert.equal(first.has('lib'), false);

    const swapped = summary(await readTar(pack([otherHello, hello])));
    assert.equal(swapped.get('bin/hello'), `-> ${otherHello}/bin/hello`);
    assert.equal(swapped.get('lib/'), 'directory 755');
  });

  it('adds /tmp (1777), /usr/bin and /usr/bin/env from the forest', async () => {
    const entries = summary(await readTar(pack([hello, coreutils], [envInClosure, hello, coreutils])));
    assert.equal(entries.get('tmp/'), 'directory 1777');
    assert.equal(entries.get('usr/'), 'directory 755');
    assert.equal(entries.get('usr/bin/'), 'directory 755');
    // The forest's env wins over one that sorts first in the closure.
    assert.equal(entries.get('usr/bin/env'), `-> ${coreutils}/bin/env`);
    assert.equal(entries.get('bin/env'), `-> ${coreutils}/bin/env`);
  });

  it('takes /usr/bin/env from the first closure path in byte order when the forest has none', async () => {
    const entries = summary(await readTar(pack([hello], [laterEnvInClosure, hello, envInClosure])));
    assert.equal(entries.get('usr/bin/env'), `-> ${envInClosure}/bin/env`);
  });

  it('omits /usr/bin/env when nothing in the image has one', async () => {
    const entries = summary(await readTar(pack([hello, docs])));
    assert.equal(entries.has('usr/bin/env'), false);
    assert.equal(entries.get('usr/bin/'), 'directory 755');
  });

  it('skips a top-level path that is a single file', async () => {
    const names = (await readTar(pack([singleFile, docs]))).map((r) => r.header.name);
    assert.deepEqual(names, ['share/', 'share/doc/', 'share/doc/readme.txt', 'tmp/', 'usr/', 'usr/bin/']);
  });

  it('is sorted and deterministic, and ignores repeated contents', async () => {
    const a = await collect(pack([hello, coreutils, docs], [docs, coreutils, hello]));
    const b = await collect(pack([hello, coreutils, hello, docs], [hello, docs, coreutils, docs]));
    assert.ok(a.equals(b));
    const names = (await readTar(a)).map((r) => r.header.name);
    assert.deepEqual(names, [
      'bin/',
      'bin/env',
      'bin/hello',
      'bin/hello-alias',
      'bin/ls',
      'lib',
      'share/',
      'share/doc/',
      'share/doc/readme.txt',
      'share/man/',
      'share/man/man1/',
      'share/man/man1/hello.1',
      'tmp/',
      'usr/',
      'usr/bin/',
      'usr/bin/env',
    ]);
  });

  it('errors the stream for a requested path that does not exist', async () => {
    await assert.rejects(collect(pack([hello, '/nix/store/zzz-missing'])), StoreReadError);
  });

  it('rejects malformed store paths synchronously', () => {
    assert.throws(() => pack([`${hello}/bin`]), InvalidStorePathError);
    assert.throws(() => pack([hello], ['relative']), InvalidStorePathError);
  });
});
