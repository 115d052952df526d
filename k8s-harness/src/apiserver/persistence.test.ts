// With a data directory, objects (built-in and custom) survive a restart of the server, the
// same CA keeps earlier kubeconfigs valid, and resourceVersions keep increasing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { startApiServer } from './index.ts';
import { KUBECTL, run } from '@nixery/test-support';
import { WIDGET_CRD } from './testing.ts';

function clients(kubeconfig: string): { core: CoreV1Api; custom: CustomObjectsApi } {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return { core: kc.makeApiClient(CoreV1Api), custom: kc.makeApiClient(CustomObjectsApi) };
}

describe('persistence', () => {
  it('keeps objects, custom resource definitions and the resourceVersion sequence across a restart', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'apiserver-persist-'));
    try {
      const first = await startApiServer({ dataDir });
      let lastRV: number;
      let caPem: string;
      try {
        const apply = await run(KUBECTL, ['apply', '-f', '-'], { input: WIDGET_CRD, env: { ...process.env, KUBECONFIG: first.kubeconfigPath, HOME: dataDir } });
        assert.equal(apply.code, 0, apply.stderr);
        const c = clients(first.kubeconfigPath);
        await c.core.createNamespace({ body: { metadata: { name: 'kept' } } });
        await c.core.createNamespacedConfigMap({ namespace: 'kept', body: { metadata: { name: 'cfg' }, data: { k: 'v' } } });
        await c.custom.createNamespacedCustomObject({ group: 'example.com', version: 'v1', namespace: 'kept', plural: 'widgets', body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 'small' } } });
        const deleted = await c.core.createNamespacedConfigMap({ namespace: 'kept', body: { metadata: { name: 'gone' } } });
        await c.core.deleteNamespacedConfigMap({ namespace: 'kept', name: 'gone' });
        lastRV = Number(deleted.metadata?.resourceVersion);
        caPem = first.caCertPem;
      } finally {
        await first.stop();
      }

      const second = await startApiServer({ dataDir });
      try {
        assert.equal(second.caCertPem, caPem);
        const c = clients(second.kubeconfigPath);
        const cfg = await c.core.readNamespacedConfigMap({ namespace: 'kept', name: 'cfg' });
        assert.deepEqual(cfg.data, { k: 'v' });
        const w = (await c.custom.getNamespacedCustomObject({ group: 'example.com', version: 'v1', namespace: 'kept', plural: 'widgets', name: 'w' })) as { spec: { replicas: number } };
        assert.equal(w.spec.replicas, 1);
        await assert.rejects(c.core.readNamespacedConfigMap({ namespace: 'kept', name: 'gone' }));
        const fresh = await c.core.createNamespacedConfigMap({ namespace: 'kept', body: { metadata: { name: 'new' } } });
        assert.ok(Number(fresh.metadata?.resourceVersion) > lastRV + 1, 'the deletion consumed a resourceVersion too');
      } finally {
        await second.stop();
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
