// Secret and ConfigMap volumes of a running pod follow their objects, as a kubelet keeps them
// (here within the agent's sync period, 2 s by default, instead of about a minute): a rotated
// certificate or a rewritten policy reaches a pod without a restart. A subPath mount keeps what it
// bound at the start, as in Kubernetes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventually } from '@nixery/test-support';
import { claimClusterIpRange, type ClaimedRange } from '../ip-range.ts';
import { BUSYBOX_IMAGE, startCluster, type Cluster } from './testing.ts';

const NS = 'refresh-it';
const BASE = '/srv/nixery-node-refresh';

describe('node agent: Secret and ConfigMap volumes are brought up to date while the pod runs', () => {
  let range: ClaimedRange;
  let cluster: Cluster;
  const core = () => cluster.kube.core;
  const logs = async (name: string) => {
    const result = await cluster.kubectl(['logs', '-n', NS, name]);
    return result.code === 0 ? result.stdout : '';
  };

  before(async () => {
    range = await claimClusterIpRange();
    cluster = await startCluster(range.range);
    await cluster.namespace(NS);
  });
  after(async () => {
    await cluster?.stop();
    await range?.release();
  });

  it('an updated Secret and ConfigMap show in the volume within the sync period; a subPath mount keeps the old content', async () => {
    await core().createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'tls' }, stringData: { 'tls.crt': 'certificate-1' } } });
    await core().createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'policy' }, data: { 'policy.json': '{"rules":[]}' } } });
    // The container reports what it reads once at the start, and again once both files changed.
    const script = [
      `first=$(cat ${BASE}/tls/tls.crt); policy=$(cat ${BASE}/policy/policy.json)`,
      `echo "start $first $(cat ${BASE}/single.crt) $policy"`,
      `i=0; while { [ "$(cat ${BASE}/tls/tls.crt)" = "$first" ] || [ "$(cat ${BASE}/policy/policy.json)" = "$policy" ]; } && [ $i -lt 600 ]; do busybox sleep 0.1; i=$((i+1)); done`,
      `echo "now $(cat ${BASE}/tls/tls.crt) $(cat ${BASE}/single.crt) $(cat ${BASE}/policy/policy.json)"`,
    ].join('\n');
    await core().createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'reader' },
        spec: {
          restartPolicy: 'Never',
          volumes: [{ name: 'tls', secret: { secretName: 'tls' } }, { name: 'policy', configMap: { name: 'policy' } }],
          containers: [{
            name: 'main',
            image: BUSYBOX_IMAGE,
            args: ['sh', '-c', script],
            volumeMounts: [
              { name: 'tls', mountPath: `${BASE}/tls`, readOnly: true },
              { name: 'tls', mountPath: `${BASE}/single.crt`, subPath: 'tls.crt' },
              { name: 'policy', mountPath: `${BASE}/policy` },
            ],
          }],
        },
      },
    });
    await eventually('the reader to have started', async () => ((await logs('reader')).startsWith('start ') ? true : undefined), 60_000, 100);
    assert.equal(await logs('reader'), 'start certificate-1 certificate-1 {"rules":[]}\n');

    const changed = Date.now();
    await core().replaceNamespacedConfigMap({ name: 'policy', namespace: NS, body: { metadata: { name: 'policy' }, data: { 'policy.json': '{"rules":[{"users":["alice"]}]}' } } });
    await core().replaceNamespacedSecret({ name: 'tls', namespace: NS, body: { metadata: { name: 'tls' }, stringData: { 'tls.crt': 'certificate-2' } } });
    const pod = await eventually('the reader to see the new certificate and finish', async () => {
      const p = await core().readNamespacedPod({ name: 'reader', namespace: NS });
      return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
    }, 30_000, 100);
    const elapsed = Date.now() - changed;
    assert.equal(pod.status?.phase, 'Succeeded');
    assert.equal(await logs('reader'), 'start certificate-1 certificate-1 {"rules":[]}\nnow certificate-2 certificate-1 {"rules":[{"users":["alice"]}]}\n');
    assert.ok(elapsed < 10_000, `seen after ${elapsed} ms; the sync period is 2 s`);
  });
});
