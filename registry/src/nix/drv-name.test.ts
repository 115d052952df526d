import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDrvName, storePathName } from './drv-name.ts';
import { InvalidNixHashError, nixSha256Hex } from './hash.ts';

describe('store path names, split as builtins.parseDrvName splits them', () => {
  it('start the version at the first dash followed by something other than a letter', () => {
    assert.deepEqual(parseDrvName('hello-2.12.1'), { name: 'hello', version: '2.12.1' });
    assert.deepEqual(parseDrvName('python3.11-setuptools-69.0'), { name: 'python3.11-setuptools', version: '69.0' });
    assert.deepEqual(parseDrvName('glibc-2.38-44'), { name: 'glibc', version: '2.38-44' });
    assert.deepEqual(parseDrvName('bash-interactive-5.2p26-man'), { name: 'bash-interactive', version: '5.2p26-man' });
    assert.deepEqual(parseDrvName('nix-.1'), { name: 'nix', version: '.1' });
  });

  it('leave a name without such a dash whole, with an empty version', () => {
    assert.deepEqual(parseDrvName('iana-etc'), { name: 'iana-etc', version: '' });
    assert.deepEqual(parseDrvName('busybox-static'), { name: 'busybox-static', version: '' });
    assert.deepEqual(parseDrvName('trailing-'), { name: 'trailing-', version: '' });
  });

  it('come from store paths only', () => {
    assert.equal(storePathName('/nix/store/nbi739f775iyffiz3afh7wl9vcka7zrk-busybox-1.35'), 'busybox-1.35');
    assert.throws(() => storePathName('/nix/store/short-busybox'), /not a store path/);
    assert.throws(() => storePathName('/usr/bin/busybox'), /not a store path/);
  });
});

describe('Nix SHA-256 hashes, read back to hex', () => {
  // One hash in the three forms `nix hash to-base16`/`to-base32` print it.
  const hex = '827ac6f6a6781282e42bb2f0ffafc23871b9e6cf4ed4cfdb30f4674b6887f636';

  it('from SRI, Nix base-32 and hex', () => {
    assert.equal(nixSha256Hex('sha256-gnrG9qZ4EoLkK7Lw/6/COHG55s9O1M/bMPRnS2iH9jY='), hex);
    assert.equal(nixSha256Hex('sha256:0dpnhxl4nrzl63dwzm2frzkbjw9qqapzzw5j5gj844kqlvvccyl2'), hex);
    assert.equal(nixSha256Hex(`sha256:${hex}`), hex);
  });

  it('refuse anything else', () => {
    for (const bad of ['sha256-gnrG9qZ4', 'sha512-abc', 'sha256:0dpnhxl4nrzl63dwzm2frzkbjw9qqapzzw5j5gj844kqlvvccyle', 'sha256:zzpnhxl4nrzl63dwzm2frzkbjw9qqapzzw5j5gj844kqlvvccyl2', '']) {
      assert.throws(() => nixSha256Hex(bad), InvalidNixHashError, bad);
    }
  });
});
