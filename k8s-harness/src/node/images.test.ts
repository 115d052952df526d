import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultPullPolicy, findMapping, parseRegistryReference, repositoryAndVersion, resolveImage } from './images.ts';

const map = [
  { image: 'example.org/tiny-http', command: ['node', 'tiny-http.mjs'] },
  { image: 'example.org/pinned:v1', command: ['pinned'] },
  { image: 'tools.local/', command: ['any-tool'] },
];

describe('image map', () => {
  it('an entry without tag matches its repository with any tag or digest', () => {
    assert.equal(findMapping('example.org/tiny-http', map)?.command[0], 'node');
    assert.equal(findMapping('example.org/tiny-http:latest', map)?.command[0], 'node');
    assert.equal(findMapping(`example.org/tiny-http@sha256:${'a'.repeat(64)}`, map)?.command[0], 'node');
  });
  it('does not match a longer repository name that merely starts the same', () => {
    assert.equal(findMapping('example.org/tiny-http2', map), undefined);
    assert.equal(findMapping('example.org/tiny-http/sub', map), undefined);
  });
  it('an entry with a tag matches only that tag', () => {
    assert.equal(findMapping('example.org/pinned:v1', map)?.command[0], 'pinned');
    assert.equal(findMapping('example.org/pinned:v2', map), undefined);
  });
  it('an entry ending in / matches everything below it', () => {
    assert.equal(findMapping('tools.local/a/b:c', map)?.command[0], 'any-tool');
  });
  it('the first matching entry wins', () => {
    assert.equal(findMapping('x.io/a', [{ image: 'x.io/', command: ['first'] }, { image: 'x.io/a', command: ['second'] }])?.command[0], 'first');
  });
});

describe('registry references', () => {
  it('a first component with a port, a dot or localhost names a registry', () => {
    assert.deepEqual(parseRegistryReference('nixery.nixery.svc.cluster.local:8080/shell/hello:latest'), {
      registry: 'nixery.nixery.svc.cluster.local:8080', repository: 'shell/hello', tag: 'latest',
    });
    assert.deepEqual(parseRegistryReference('localhost/hello'), { registry: 'localhost', repository: 'hello', tag: 'latest' });
    assert.deepEqual(parseRegistryReference('127.0.0.1:5000/a/b:v2'), { registry: '127.0.0.1:5000', repository: 'a/b', tag: 'v2' });
  });
  it('keeps a digest and takes no default tag then', () => {
    const digest = `sha256:${'0'.repeat(64)}`;
    const ref = parseRegistryReference(`r.io:1/shell/hello@${digest}`);
    assert.deepEqual(ref, { registry: 'r.io:1', repository: 'shell/hello', digest });
    assert.equal(repositoryAndVersion(ref!), `shell/hello@${digest}`);
    assert.equal(defaultPullPolicy(ref!), 'IfNotPresent');
  });
  it('Docker Hub short names are not registry references', () => {
    assert.equal(parseRegistryReference('busybox'), undefined);
    assert.equal(parseRegistryReference('library/busybox:1.36'), undefined);
  });
  it(':latest is pulled Always, other tags IfNotPresent', () => {
    assert.equal(defaultPullPolicy(parseRegistryReference('r.io/a')!), 'Always');
    assert.equal(defaultPullPolicy(parseRegistryReference('r.io/a:v1')!), 'IfNotPresent');
  });
});

describe('resolveImage', () => {
  it('prefers a mapping over pulling, even for registry-looking names', () => {
    assert.equal(resolveImage('example.org/tiny-http:1', map).kind, 'mapped');
    assert.equal(resolveImage('other.org/x', map).kind, 'registry');
  });
  it('explains why an unmapped non-registry image cannot run', () => {
    const result = resolveImage('nginx:1.25', map);
    assert.equal(result.kind, 'invalid');
    assert.match(result.kind === 'invalid' ? result.message : '', /"nginx:1.25" is not mapped .* does not name a registry/);
  });
});
