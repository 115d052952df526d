import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultNixDir } from './nix-dir.ts';
import { NixSettingsError, parseNixSettings, productNixArgs } from './settings.ts';

describe('the product\'s Nix settings', () => {
  it('reads name = value lines in order, with comments, and keeps empty values', () => {
    const text = '# a comment\nbuild-users-group =\n\nsandbox = false # trailing\nbuilders = ssh://a x86_64-linux\n';
    assert.deepEqual(parseNixSettings(text, 'f'), [
      ['build-users-group', ''],
      ['sandbox', 'false'],
      ['builders', 'ssh://a x86_64-linux'],
    ]);
  });

  it('refuses a line that is not a setting, and a setting given twice', () => {
    assert.throws(() => parseNixSettings('sandbox false\n', 'f'), NixSettingsError);
    assert.throws(() => parseNixSettings('sandbox = false\nsandbox = true\n', 'f'), /sets sandbox a second time/);
  });

  it('passes nix/nix.conf as --option pairs: no build users, no sandbox, local builds only', () => {
    const args = productNixArgs(defaultNixDir());
    const options = new Map<string, string>();
    for (let i = 0; i < args.length; i += 3) {
      assert.equal(args[i], '--option');
      options.set(args[i + 1]!, args[i + 2]!);
    }
    assert.equal(options.get('build-users-group'), '');
    assert.equal(options.get('sandbox'), 'false');
    assert.equal(options.get('builders'), '');
    assert.equal(options.get('pure-eval'), 'false');
    assert.notEqual(options.get('max-jobs'), '0');
    // linux/arm64 images: built here through an emulator (scripts/setup.sh registers qemu-aarch64).
    assert.equal(options.get('extra-platforms'), 'aarch64-linux');
  });
});
