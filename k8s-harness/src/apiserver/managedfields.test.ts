import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from './errors.ts';
import { fieldsOf, recordUpdate, serverSideApply } from './managedfields.ts';
import type { WriteContext } from './managedfields.ts';
import { builtinTypeNode } from './typeinfo.ts';

const ctx = (manager: string): WriteContext => ({ manager, apiVersion: 'apps/v1', now: '2024-01-01T00:00:00Z', type: builtinTypeNode('Deployment'), hasStatus: true });

const config = (image: string, withEnv = true): Record<string, unknown> => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'd', labels: { app: 'd' } },
  spec: { template: { spec: { containers: [{ name: 'app', image, ...(withEnv ? { env: [{ name: 'A', value: '1' }] } : {}) }] } } },
});

describe('field ownership', () => {
  it('describes associative lists by their keys, as FieldsV1 does', () => {
    assert.deepEqual(fieldsOf(config('x'), builtinTypeNode('Deployment'), 'main').toFieldsV1(), {
      'f:metadata': { 'f:labels': { 'f:app': {} } },
      'f:spec': { 'f:template': { 'f:spec': { 'f:containers': { 'k:{"name":"app"}': { '.': {}, 'f:name': {}, 'f:image': {}, 'f:env': { 'k:{"name":"A"}': { '.': {}, 'f:name': {}, 'f:value': {} } } } } } } },
    });
  });

  it('applies, then conflicts with another manager on a field whose value would change', () => {
    const live = serverSideApply(undefined, config('x'), ctx('operator'), false);
    assert.deepEqual((live.metadata as { managedFields: { manager: string }[] }).managedFields.map((m) => m.manager), ['operator']);
    const again = serverSideApply(live, config('x'), ctx('other'), false);
    assert.equal((again.metadata as { managedFields: unknown[] }).managedFields.length, 2, 'same values are co-owned without conflict');
    assert.throws(
      () => serverSideApply(live, config('y'), ctx('other'), false),
      (err: unknown) => err instanceof ApiError && err.code === 409 && /conflict with "operator": .spec.template.spec.containers\[name="app"\].image/.test(err.message),
    );
    const forced = serverSideApply(live, config('y'), ctx('other'), true);
    assert.equal(((forced.spec as { template: { spec: { containers: { image: string }[] } } }).template.spec.containers[0])?.image, 'y');
  });

  it('removes fields a manager stops applying, unless someone else owns them', () => {
    const live = serverSideApply(undefined, config('x'), ctx('operator'), false);
    const trimmed = serverSideApply(live, config('x', false), ctx('operator'), false) as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
    assert.equal(trimmed.spec.template.spec.containers[0]?.env, undefined);
  });

  it('gives fields an ordinary update changed to the updating manager', () => {
    const before = serverSideApply(undefined, config('x'), ctx('operator'), false);
    const after = structuredClone(before) as { metadata: { labels: Record<string, string>; managedFields: { manager: string; operation: string; fieldsV1: Record<string, unknown> }[] } };
    after.metadata.labels.app = 'changed';
    recordUpdate(before, after as unknown as Record<string, unknown>, ctx('kubectl-edit'));
    const edit = after.metadata.managedFields.find((m) => m.manager === 'kubectl-edit');
    assert.deepEqual(edit?.fieldsV1, { 'f:metadata': { 'f:labels': { 'f:app': {} } } });
    assert.equal(edit?.operation, 'Update');
    const op = after.metadata.managedFields.find((m) => m.manager === 'operator');
    assert.equal(JSON.stringify(op?.fieldsV1).includes('f:labels'), false);
  });
});
