import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Deployment, V1ReplicaSet } from '@kubernetes/client-node';
import { planDeployment, REVISION_ANNOTATION, TEMPLATE_HASH_LABEL, templateHash } from './deployment.ts';

const NOW = Date.parse('2025-01-01T00:00:00Z');

function deployment(over: { replicas?: number; image?: string; strategy?: 'Recreate' | 'RollingUpdate'; generation?: number } = {}): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'shop', uid: 'd-uid', generation: over.generation ?? 1 },
    spec: {
      replicas: over.replicas ?? 1,
      selector: { matchLabels: { app: 'web' } },
      strategy: { type: over.strategy ?? 'RollingUpdate' },
      template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: over.image ?? 'example.org/web:v1' }] } },
    },
  };
}

/** The ReplicaSet the controller created for `d`, as the API would hold it with some status. */
function existing(d: V1Deployment, replicas: number, available: number, revision: number): V1ReplicaSet {
  const rs = planDeployment(d, [], 0, NOW).create!;
  rs.metadata!.uid = `rs-${revision}`;
  rs.metadata!.annotations![REVISION_ANNOTATION] = String(revision);
  rs.spec!.replicas = replicas;
  rs.status = { replicas, readyReplicas: available, availableReplicas: available, observedGeneration: 1 };
  return rs;
}

describe('Deployment → ReplicaSet', () => {
  it('creates a ReplicaSet named by the template hash, owned by the Deployment', () => {
    const d = deployment();
    const plan = planDeployment(d, [], 0, NOW);
    const hash = templateHash(d);
    assert.match(hash, /^[bcdfghjklmnpqrstvwxz2456789]+$/);
    assert.equal(plan.create?.metadata?.name, `web-${hash}`);
    assert.equal(plan.create?.spec?.replicas, 1);
    assert.deepEqual(plan.create?.spec?.selector?.matchLabels, { app: 'web', [TEMPLATE_HASH_LABEL]: hash });
    assert.equal(plan.create?.spec?.template?.metadata?.labels?.[TEMPLATE_HASH_LABEL], hash);
    assert.equal(plan.create?.metadata?.annotations?.[REVISION_ANNOTATION], '1');
    assert.deepEqual(plan.create?.metadata?.ownerReferences, [
      { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd-uid', controller: true, blockOwnerDeletion: true },
    ]);
    const progressing = plan.status.conditions?.find((c) => c.type === 'Progressing');
    assert.equal(progressing?.reason, 'NewReplicaSetCreated');
  });

  it('the hash changes with the template and only with it', () => {
    assert.equal(templateHash(deployment()), templateHash(deployment({ replicas: 5 })));
    assert.notEqual(templateHash(deployment()), templateHash(deployment({ image: 'example.org/web:v2' })));
  });

  it('scales the current ReplicaSet with the Deployment', () => {
    const d = deployment({ replicas: 3 });
    const plan = planDeployment(d, [existing(deployment(), 1, 1, 1)], 0, NOW);
    assert.equal(plan.create, undefined);
    assert.deepEqual(plan.scale.map((s) => [s.replicas]), [[3]]);
  });

  it('reports availability and completion once the new ReplicaSet is fully available', () => {
    const d = deployment({ generation: 4 });
    const plan = planDeployment(d, [existing(d, 1, 1, 1)], 0, NOW);
    assert.deepEqual(
      { ...plan.status, conditions: undefined },
      { observedGeneration: 4, replicas: 1, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1, unavailableReplicas: 0, conditions: undefined },
    );
    const byType = Object.fromEntries((plan.status.conditions ?? []).map((c) => [c.type, c]));
    assert.equal(byType.Available?.status, 'True');
    assert.equal(byType.Available?.reason, 'MinimumReplicasAvailable');
    assert.equal(byType.Progressing?.status, 'True');
    assert.equal(byType.Progressing?.reason, 'NewReplicaSetAvailable');
  });
});

describe('RollingUpdate with one replica (maxSurge 25% → 1, maxUnavailable 25% → 0)', () => {
  const v1 = deployment();
  const v2 = deployment({ image: 'example.org/web:v2', generation: 2 });
  const old = existing(v1, 1, 1, 1);

  it('surges: the new ReplicaSet starts with one replica while the old one keeps its pod', () => {
    const plan = planDeployment(v2, [old], 1, NOW);
    assert.equal(plan.create?.spec?.replicas, 1);
    assert.equal(plan.create?.metadata?.annotations?.[REVISION_ANNOTATION], '2');
    assert.deepEqual(plan.scale, []);
  });
  it('keeps the old pod until the new one is available', () => {
    const plan = planDeployment(v2, [old, existing(v2, 1, 0, 2)], 1, NOW);
    assert.deepEqual(plan.scale, []);
    assert.equal(plan.status.conditions?.find((c) => c.type === 'Progressing')?.reason, 'ReplicaSetUpdated');
  });
  it('then scales the old ReplicaSet to zero', () => {
    const plan = planDeployment(v2, [old, existing(v2, 1, 1, 2)], 1, NOW);
    assert.deepEqual(plan.scale.map((s) => [s.name, s.replicas]), [[old.metadata?.name, 0]]);
  });
});

describe('Recreate', () => {
  const v1 = deployment({ strategy: 'Recreate' });
  const v2 = deployment({ strategy: 'Recreate', image: 'example.org/web:v2' });
  it('scales old ReplicaSets to zero and creates the new one empty while old pods exist', () => {
    const plan = planDeployment(v2, [existing(v1, 1, 1, 1)], 1, NOW);
    assert.equal(plan.create?.spec?.replicas, 0);
    assert.deepEqual(plan.scale.map((s) => s.replicas), [0]);
  });
  it('scales the new ReplicaSet up once the old pods are gone', () => {
    const oldRs = existing(v1, 0, 0, 1);
    oldRs.status = { replicas: 0 };
    const plan = planDeployment(v2, [oldRs, existing(v2, 0, 0, 2)], 0, NOW);
    assert.deepEqual(plan.scale.map((s) => s.replicas), [1]);
  });
});

describe('revision history', () => {
  it('deletes idle old ReplicaSets beyond revisionHistoryLimit, oldest first', () => {
    const d = deployment({ image: 'example.org/web:v9' });
    d.spec!.revisionHistoryLimit = 1;
    const olds = [1, 2, 3].map((r) => {
      const rs = existing(deployment({ image: `example.org/web:v${r}` }), 0, 0, r);
      rs.status = { replicas: 0 };
      return rs;
    });
    const plan = planDeployment(d, [...olds, existing(d, 1, 1, 4)], 0, NOW);
    assert.deepEqual(plan.delete, [olds[0]?.metadata?.name, olds[1]?.metadata?.name]);
  });
});
