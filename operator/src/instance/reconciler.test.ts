import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KubernetesObject, V1Deployment, V1Service } from '@kubernetes/client-node';
import { silentLogger } from '@nixery/registry/operator-api';
import { getCondition } from '../api/conditions.ts';
import type { NixeryInstance, NixeryInstanceStatus } from '../api/types.ts';
import { apiError, cacheOf } from '../test-support/fakes.ts';
import { testInstance } from '../test-support/fixtures.ts';
import { InstanceReconciler, type RegistryProbe } from './reconciler.ts';

const NOW = '2026-01-01T00:00:00.000Z';
const instance = testInstance();
const KEY = 'team-a/nixery';

const deployment = (readyReplicas: number): V1Deployment => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'nixery', namespace: 'team-a', generation: 1 },
  status: { observedGeneration: 1, readyReplicas, updatedReplicas: 1 },
});
const service: V1Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'nixery', namespace: 'team-a' }, spec: { clusterIP: '10.0.0.7' } };
const pvc = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'nixery-storage', namespace: 'team-a' }, status: { phase: 'Bound' } };

/**
 * A reconciler against fakes. `requests` lists what it asked of the API server, one line each;
 * `statuses` the status bodies it wrote; `probed` the URLs it asked for /v2/.
 */
function reconcilerFor(
  subject: NixeryInstance,
  world: { owned?: KubernetesObject[]; secrets?: string[]; probe?: Awaited<ReturnType<RegistryProbe>>; createSecret?: () => Promise<void> } = {},
) {
  const requests: string[] = [];
  const statuses: NixeryInstanceStatus[] = [];
  const probed: string[] = [];
  const secrets = new Set(world.secrets ?? ['nixery-push-token']);
  const owned: Record<string, KubernetesObject[]> = {};
  for (const object of world.owned ?? []) (owned[object.kind!] ??= []).push(object);
  const reconciler = new InstanceReconciler({
    clients: {
      core: {
        readNamespacedSecret: async ({ name }) => {
          if (!secrets.has(name)) throw apiError(404);
          return { metadata: { name } };
        },
        createNamespacedSecret: async ({ body }) => {
          requests.push(`create Secret ${body.metadata!.name}`);
          await world.createSecret?.();
          return body;
        },
      },
      customObjects: {
        patchNamespacedCustomObjectStatus: async ({ plural, name, body }) => {
          requests.push(`patch ${plural}/${name}/status`);
          statuses.push((body as { status: NixeryInstanceStatus }).status);
          return {};
        },
      },
    },
    applier: {
      apply: async (desired, current) => {
        requests.push(`apply ${desired.kind} ${desired.metadata!.name}${current ? ' over the cached one' : ''}`);
        return 'applied';
      },
    },
    caches: { instances: cacheOf(subject), owned: Object.fromEntries(Object.entries(owned).map(([kind, objects]) => [kind, cacheOf(...objects)])) },
    log: silentLogger,
    onWrite: () => {},
    probe: async (url) => {
      probed.push(url);
      return world.probe ?? { ok: true };
    },
    now: () => NOW,
  });
  return { reconcile: () => reconciler.reconcile(KEY), requests, statuses, probed };
}

describe('reconciling a NixeryInstance', () => {
  it('applies the desired objects in order, handing the applier what the cache holds', async () => {
    const { reconcile, requests } = reconcilerFor(instance, { owned: [deployment(0)] });
    await reconcile();
    assert.deepEqual(requests.filter((r) => r.startsWith('apply')), [
      'apply ServiceAccount nixery',
      'apply PersistentVolumeClaim nixery-storage',
      'apply Service nixery',
      'apply Deployment nixery over the cached one',
    ]);
  });

  it('is Ready only when the Deployment has ready replicas and /v2/ answers through the Service', async () => {
    const starting = reconcilerFor(instance, { owned: [deployment(0), service, pvc] });
    assert.deepEqual(await starting.reconcile(), { requeueAfterMs: 3000 });
    assert.deepEqual(starting.probed, [], 'no ready replica: nothing to ask yet');
    assert.equal(getCondition(starting.statuses[0]!.conditions, 'Ready')!.reason, 'WaitingForPods');

    const silent = reconcilerFor(instance, { owned: [deployment(1), service, pvc], probe: { ok: false, error: 'GET failed: ECONNREFUSED' } });
    assert.deepEqual(await silent.reconcile(), { requeueAfterMs: 3000 });
    assert.equal(getCondition(silent.statuses[0]!.conditions, 'Ready')!.status, 'False');
    assert.equal(getCondition(silent.statuses[0]!.conditions, 'Degraded')!.reason, 'RegistryNotAnswering');

    const ready = reconcilerFor(instance, { owned: [deployment(1), service, pvc] });
    assert.deepEqual(await ready.reconcile(), {});
    assert.deepEqual(ready.probed, ['http://10.0.0.7:5000/v2/']);
    assert.deepEqual(ready.requests.filter((r) => r.startsWith('patch')), ['patch nixeryinstances/nixery/status']);
    assert.equal(getCondition(ready.statuses[0]!.conditions, 'Ready')!.status, 'True');
    assert.equal(ready.statuses[0]!.endpoint, 'nixery.team-a.svc.cluster.local:5000');
  });

  it('writes no status when the one it has is still true', async () => {
    const first = reconcilerFor(instance, { owned: [deployment(1), service, pvc] });
    await first.reconcile();
    const again = reconcilerFor({ ...instance, status: first.statuses[0]! }, { owned: [deployment(1), service, pvc] });
    assert.deepEqual(await again.reconcile(), {});
    assert.deepEqual(again.statuses, []);
  });

  it('creates the push-token Secret when it is missing, and leaves an existing one alone', async () => {
    const fresh = reconcilerFor(instance, { secrets: [] });
    await fresh.reconcile();
    assert.equal(fresh.requests[0], 'create Secret nixery-push-token', 'before the Deployment that mounts it');
    const existing = reconcilerFor(instance);
    await existing.reconcile();
    assert.ok(!existing.requests.some((r) => r.startsWith('create Secret')));
    const raced = reconcilerFor(instance, { secrets: [], createSecret: () => Promise.reject(apiError(409)) });
    await assert.doesNotReject(raced.reconcile(), 'created meanwhile by an earlier run: just as good');
  });

  it('says Degraded when the credentials Secret the spec names does not exist', async () => {
    const gcs = testInstance({ storage: { gcs: { bucket: 'images', credentialsSecret: { name: 'gcs-key', key: 'key.json' }, signedUrls: true } } });
    const { reconcile, statuses } = reconcilerFor(gcs, { owned: [deployment(0)] });
    await reconcile();
    assert.deepEqual([getCondition(statuses[0]!.conditions, 'Degraded')!.reason, getCondition(statuses[0]!.conditions, 'Degraded')!.message], [
      'SecretNotFound',
      'Secret gcs-key does not exist',
    ]);
  });

  it('leaves an instance being deleted to the garbage collector', async () => {
    const deleting = reconcilerFor(testInstance({}, { deletionTimestamp: new Date(NOW) }));
    assert.deepEqual(await deleting.reconcile(), {});
    assert.deepEqual(deleting.requests, []);
  });
});
