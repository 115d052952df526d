import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { watchedNamespaces } from './manager.ts';

describe('the namespaces a confined operator watches', () => {
  it("adds the node-config namespace to the watched ones (DaemonSets, ConfigMaps), once", () => {
    assert.deepEqual(watchedNamespaces(['team-a', 'team-b'], ['nixery-system']), ['team-a', 'team-b', 'nixery-system']);
    assert.deepEqual(watchedNamespaces(['team-a', 'nixery-system'], ['nixery-system']), ['team-a', 'nixery-system']);
    assert.deepEqual(watchedNamespaces(['team-a'], []), ['team-a']);
  });
});
