import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { collectionPath } from './watched-kind.ts';

describe('watched collections', () => {
  it('are cluster-wide or per namespace, for core and grouped kinds', () => {
    const deployments = { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' };
    const services = { apiVersion: 'v1', kind: 'Service', plural: 'services' };
    assert.equal(collectionPath(deployments), '/apis/apps/v1/deployments');
    assert.equal(collectionPath(deployments, 'team-a'), '/apis/apps/v1/namespaces/team-a/deployments');
    assert.equal(collectionPath(services), '/api/v1/services');
    assert.equal(collectionPath(services, 'team-a'), '/api/v1/namespaces/team-a/services');
  });
});
