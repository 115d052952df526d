import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sbomSource, withoutCredentials } from './sbom.ts';

describe('the package source as an SBOM names it', () => {
  it('is a git repository and the commit the tag resolved to', () => {
    const source = sbomSource(
      { type: 'git', url: 'https://example.org/nixpkgs.git' },
      { key: 'git:https://example.org/nixpkgs.git#0123456789abcdef0123456789abcdef01234567', gitSpec: { url: 'https://example.org/nixpkgs.git', ref: 'refs/heads/main', rev: '0123456789abcdef0123456789abcdef01234567' } },
    );
    assert.deepEqual(source, { type: 'git', location: 'https://example.org/nixpkgs.git', revision: '0123456789abcdef0123456789abcdef01234567' });
  });

  it('is a channel tarball with the commit it names, else the validator its server gave, else no revision', () => {
    const baseUrl = 'https://example.org/archive';
    const rev = 'a'.repeat(40);
    assert.deepEqual(sbomSource({ type: 'channel', channel: rev, baseUrl }, { key: `channel:${baseUrl}/${rev}.tar.gz` }), {
      type: 'channel', location: `${baseUrl}/${rev}.tar.gz`, revision: rev,
    });
    assert.deepEqual(sbomSource({ type: 'channel', channel: 'nixos-unstable', baseUrl }, { key: `channel:${baseUrl}/nixos-unstable.tar.gz#etag:"abc"` }), {
      type: 'channel', location: `${baseUrl}/nixos-unstable.tar.gz`, revision: 'etag:"abc"',
    });
    assert.deepEqual(sbomSource({ type: 'channel', channel: 'nixos-unstable', baseUrl }, {}), { type: 'channel', location: `${baseUrl}/nixos-unstable.tar.gz` });
  });

  it('is a local path with the content hash of its tree', () => {
    assert.deepEqual(sbomSource({ type: 'path', path: '/srv/nixpkgs' }, { key: `path:/srv/nixpkgs#${'f'.repeat(64)}` }), {
      type: 'path', location: '/srv/nixpkgs', revision: 'f'.repeat(64),
    });
  });

  it('never carries credentials of a URL', () => {
    assert.equal(withoutCredentials('https://user:secret@example.org/nixpkgs.git'), 'https://example.org/nixpkgs.git');
    assert.equal(withoutCredentials('https://token@example.org/a'), 'https://example.org/a');
    assert.equal(withoutCredentials('git@example.org:nixpkgs.git'), 'git@example.org:nixpkgs.git', 'an scp-like address names a user, no secret');
    const source = sbomSource({ type: 'git', url: 'https://user:secret@example.org/n.git' }, { gitSpec: { url: 'x', ref: 'HEAD', rev: 'b'.repeat(40) } });
    assert.ok(!JSON.stringify(source).includes('secret'));
  });
});
