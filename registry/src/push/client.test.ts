import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parsePushReference } from './client.ts';

describe('push references', () => {
  it('split into registry, repository and tag', () => {
    assert.deepEqual(parsePushReference('nixery.team-a.svc.cluster.local:5000/toolbox:v1'), {
      registry: 'nixery.team-a.svc.cluster.local:5000',
      name: 'toolbox',
      tag: 'v1',
    });
    assert.deepEqual(parsePushReference('127.0.0.1:5000/team/tools'), { registry: '127.0.0.1:5000', name: 'team/tools', tag: 'latest' });
  });
  it('need a registry and valid names', () => {
    assert.throws(() => parsePushReference('toolbox:v1'), /registry\/name:tag/);
    assert.throws(() => parsePushReference('host:5000/Bad..Name:v1'), /invalid repository name/);
    assert.throws(() => parsePushReference('host:5000/ok:-bad'), /invalid tag/);
  });
});
