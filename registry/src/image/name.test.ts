import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { imageFromName, InvalidNameError, InvalidTagError, isValidRepositoryName } from './name.ts';

describe('image names are package lists', () => {
  it('treats every path component as a package and always adds cacert and iana-etc', () => {
    const image = imageFromName('git/htop', 'latest');
    assert.deepEqual(image.packages, ['cacert', 'git', 'htop', 'iana-etc']);
    assert.equal(image.arch.system, 'x86_64-linux');
    assert.equal(image.arch.imageArch, 'amd64');
  });

  it('gives a/b and b/a the same package list, sorted and de-duplicated', () => {
    assert.deepEqual(imageFromName('b/a/b', 'latest').packages, imageFromName('a/b', 'latest').packages);
  });

  it('expands shell to bashInteractive, coreutils, moreutils and nano', () => {
    assert.deepEqual(imageFromName('shell/hello', 'latest').packages, [
      'bashInteractive', 'cacert', 'coreutils', 'hello', 'iana-etc', 'moreutils', 'nano',
    ]);
  });

  it('selects aarch64-linux with a leading arm64, alone or with shell', () => {
    for (const name of ['arm64/hello', 'arm64/shell/hello', 'shell/arm64/hello']) {
      const image = imageFromName(name, 'latest');
      assert.equal(image.arch.system, 'aarch64-linux', name);
      assert.equal(image.arch.imageArch, 'arm64', name);
      assert.ok(!image.packages.includes('arm64'), name);
    }
  });

  it('rejects a meta-package after the first real package', () => {
    assert.throws(() => imageFromName('hello/arm64', 'latest'), InvalidNameError);
    assert.throws(() => imageFromName('hello/shell', 'latest'), /must come before all packages/);
  });

  it('keeps dotted names and case as given (the Nix side resolves them)', () => {
    assert.deepEqual(imageFromName('haskellPackages.pandoc/7zip/mytool', 'latest').packages, [
      '7zip', 'cacert', 'haskellPackages.pandoc', 'iana-etc', 'mytool',
    ]);
  });

  it('rejects names outside the distribution grammar with NAME_INVALID', () => {
    for (const bad of ['', 'a//b', '/a', 'a/', '-a', 'a-', 'a..b', 'a$b', '.', 'a/../b', 'x'.repeat(256)]) {
      assert.equal(isValidRepositoryName(bad), false, bad);
      assert.throws(() => imageFromName(bad, 'latest'), (e: unknown) => e instanceof InvalidNameError && e.code === 'NAME_INVALID', bad);
    }
    for (const good of ['a', 'a_b', 'a__b', 'a--b', 'a.b', 'haskellPackages.pandoc', 'x/y/z', '7zip']) {
      assert.equal(isValidRepositoryName(good), true, good);
    }
  });

  it('validates tags as the distribution spec does', () => {
    assert.equal(imageFromName('hello', 'v1.2-rc_3').tag, 'v1.2-rc_3');
    assert.equal(imageFromName('hello', '0123456789abcdef0123456789abcdef01234567').tag.length, 40);
    for (const bad of ['', '.x', '-x', 'a/b', 'x'.repeat(129)]) {
      assert.throws(() => imageFromName('hello', bad), InvalidTagError, bad);
    }
  });
});
