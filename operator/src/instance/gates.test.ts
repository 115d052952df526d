import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { testInstance } from '../test-support/fixtures.ts';
import { DEFAULT_GATES, DEFAULT_REGISTRY_IMAGE, gateRefusals, imageAllowed, parseImagePatterns } from './gates.ts';

describe('registry image patterns', () => {
  const tags = ['ghcr.io/example/nixery:*', 'ghcr.io/example/nixery@sha256:*'];

  it("match a repository's tags and digests, and nothing of another repository", () => {
    assert.ok(imageAllowed('ghcr.io/example/nixery:1.2', tags));
    assert.ok(imageAllowed('ghcr.io/example/nixery@sha256:abcd', tags));
    assert.ok(imageAllowed('ghcr.io/example/nixery:1.2@sha256:abcd', tags));
    for (const other of ['ghcr.io/example/nixery', 'ghcr.io/example/nixery-evil:1', 'ghcr.io/example/nixery:1/../evil:2', 'evil.io/ghcr.io/example/nixery:1', 'ghcr.io/example/nixeryXsha256:1']) {
      assert.equal(imageAllowed(other, tags), false, other);
    }
  });

  it('* stays within one path segment, ** crosses them', () => {
    assert.ok(imageAllowed('registry.local/team/nixery:1', ['registry.local/*/nixery:*']));
    assert.equal(imageAllowed('registry.local/a/b/nixery:1', ['registry.local/*/nixery:*']), false);
    assert.ok(imageAllowed('registry.local/a/b/nixery:1', ['registry.local/**']));
    assert.equal(imageAllowed('registry.localhost/x:1', ['registry.local/**']), false);
  });

  it('are parsed from a comma-separated flag, refusing what cannot be an image or allows everything', () => {
    assert.deepEqual(parseImagePatterns(' a.io/x:* , a.io/x@sha256:*,'), ['a.io/x:*', 'a.io/x@sha256:*']);
    for (const [value, reason] of [
      ['', /at least one/],
      [' , ', /at least one/],
      ['a.io/x :1', /only the characters of image references/],
      ['a.io/x:1,b.io/$(y)', /"b\.io\/\$\(y\)" is not an image pattern/],
      ['a.io/***', /not \*\*\*/],
      ['**', /allows every image/],
    ] as const) {
      assert.throws(() => parseImagePatterns(value), reason, JSON.stringify(value));
    }
  });
});

describe('privilege gates', () => {
  it("allow, by default, the CRD's default image and any tag or digest of its repository", () => {
    const crd = fs.readFileSync(path.join(import.meta.dirname, '../../../crds/nixery.dev_nixeryinstances.yaml'), 'utf8');
    assert.match(crd, new RegExp(`default: ${DEFAULT_REGISTRY_IMAGE.replace(/[.]/g, '\\.')}\\n`), 'the constant is the schema default');
    for (const image of [DEFAULT_REGISTRY_IMAGE, 'ghcr.io/nixery-operator/nixery:0.2.0', 'ghcr.io/nixery-operator/nixery@sha256:00ff']) {
      assert.deepEqual(gateRefusals(testInstance({ image }), DEFAULT_GATES), {}, image);
    }
    assert.match(gateRefusals(testInstance({ image: 'docker.io/library/busybox:1' }), DEFAULT_GATES).image!, /^spec\.image docker\.io\/library\/busybox:1 is not allowed by the operator \(--allowed-registry-images=/);
  });

  it('refuse spec.nodeLocal unless --allow-node-local', () => {
    const edge = testInstance({ nodeLocal: { enabled: true, hostPort: 5000 } });
    assert.match(gateRefusals(edge, DEFAULT_GATES).nodeLocal!, /^spec\.nodeLocal needs the operator started with --allow-node-local/);
    assert.deepEqual(gateRefusals(edge, { ...DEFAULT_GATES, allowNodeLocal: true }), {});
    assert.deepEqual(gateRefusals(testInstance({ nodeLocal: { enabled: false, hostPort: 5000 } }), DEFAULT_GATES), {});
  });
});

describe('the --allow-node-config gate', () => {
  it('refuses spec.nodeConfig unless --allow-node-config', () => {
    const configured = testInstance({ nodeConfig: { enabled: true } });
    assert.match(gateRefusals(configured, DEFAULT_GATES).nodeConfig!, /^spec\.nodeConfig needs the operator started with --allow-node-config \(the chart's operator\.allowNodeConfig\)/);
    assert.deepEqual(gateRefusals(configured, { ...DEFAULT_GATES, allowNodeConfig: true }), {});
    assert.deepEqual(gateRefusals(configured, { ...DEFAULT_GATES, allowNodeLocal: true }).nodeConfig !== undefined, true, 'node-local does not open it');
    assert.deepEqual(gateRefusals(testInstance({ nodeConfig: { enabled: false } }), DEFAULT_GATES), {});
  });
});
