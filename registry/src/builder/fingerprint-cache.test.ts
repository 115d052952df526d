import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PackageSource } from '../config/package-source.ts';
import { tempDirs } from '../test-support/temp-dirs.ts';
import { FINGERPRINT_FRESH_MS, SourceFingerprints } from './fingerprint-cache.ts';
import type { Fingerprint } from './source-fingerprint.ts';

const tempDir = tempDirs('nixery-fingerprint-cache-');

describe('source fingerprints between requests', () => {
  it('walks a path source once per FINGERPRINT_FRESH_MS, and sees an edit after that', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'default.nix'), 'a');
    let time = 0;
    const fingerprints = new SourceFingerprints({ type: 'path', path: dir }, { timeoutSeconds: 5, now: () => time });
    const first = await fingerprints.get('latest');
    await fs.writeFile(path.join(dir, 'default.nix'), 'b');
    assert.equal((await fingerprints.get('other-tag')).key, first.key, 'every tag of a path source is one lookup');
    time += FINGERPRINT_FRESH_MS;
    assert.notEqual((await fingerprints.get('latest')).key, first.key);
  });

  it('remembers git refs per tag, and looks up nothing for a commit', async () => {
    const looked: string[] = [];
    const lookup = async (_s: PackageSource, tag: string): Promise<Fingerprint> => {
      looked.push(tag);
      return { key: `git:repo#${tag}` };
    };
    const fingerprints = new SourceFingerprints({ type: 'git', url: 'repo' }, { timeoutSeconds: 5, now: () => 0, lookup });
    for (const tag of ['main', 'v1', 'main', 'v1', 'a'.repeat(40), 'a'.repeat(40)]) await fingerprints.get(tag);
    assert.deepEqual(looked, ['main', 'v1', 'a'.repeat(40), 'a'.repeat(40)]);
    assert.equal((await fingerprints.get('v1')).key, 'git:repo#v1');
  });
});
