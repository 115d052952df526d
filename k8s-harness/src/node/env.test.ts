import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Container, V1Pod, V1Service } from '@kubernetes/client-node';
import { referencedSources, resolveEnv, serviceLinkEnv, type EnvSources } from './env.ts';

const pod: V1Pod = {
  metadata: { name: 'web-1', namespace: 'shop', uid: 'uid-1', labels: { app: 'web', tier: 'front' }, annotations: { note: 'a"b' } },
  spec: { containers: [] },
};
const sources = (over: Partial<EnvSources> = {}): EnvSources => ({
  secrets: new Map([['creds', { user: 'alice', 'bad key': 'x' }]]),
  configMaps: new Map([['settings', { MODE: 'fast', LEVEL: '3' }]]),
  podIP: '127.244.0.7',
  hostIP: '127.0.0.1',
  nodeName: 'nixery-node',
  ...over,
});

describe('container environment', () => {
  it('envFrom first (with prefix, invalid names skipped), then env overriding it', () => {
    const container: V1Container = {
      name: 'c',
      envFrom: [{ configMapRef: { name: 'settings' } }, { secretRef: { name: 'creds' }, prefix: 'S_' }],
      env: [{ name: 'MODE', value: 'slow' }],
    };
    const result = resolveEnv(pod, container, sources());
    assert.deepEqual(result, { ok: true, env: { MODE: 'slow', LEVEL: '3', S_user: 'alice' } });
  });
  it('values refer to earlier variables with $(VAR)', () => {
    const container: V1Container = { name: 'c', env: [{ name: 'A', value: 'x' }, { name: 'B', value: '$(A)-$(C)' }, { name: 'C', value: 'late' }] };
    assert.deepEqual(resolveEnv(pod, container, sources()), { ok: true, env: { A: 'x', B: 'x-$(C)', C: 'late' } });
  });
  it('resolves secretKeyRef, configMapKeyRef and the downward API', () => {
    const container: V1Container = {
      name: 'c',
      env: [
        { name: 'USER', valueFrom: { secretKeyRef: { name: 'creds', key: 'user' } } },
        { name: 'LEVEL', valueFrom: { configMapKeyRef: { name: 'settings', key: 'LEVEL' } } },
        { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
        { name: 'UID', valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } },
        { name: 'APP', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        { name: 'LABELS', valueFrom: { fieldRef: { fieldPath: 'metadata.labels' } } },
        { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        { name: 'CPU', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
      ],
    };
    const result = resolveEnv(pod, container, sources());
    assert.deepEqual(result, {
      ok: true,
      env: {
        USER: 'alice', LEVEL: '3', POD: 'web-1', NS: 'shop', UID: 'uid-1', APP: 'web',
        LABELS: 'app="web"\ntier="front"', IP: '127.244.0.7', NODE: 'nixery-node', CPU: '2',
      },
    });
  });
  it('a missing Secret, ConfigMap or key is a CreateContainerConfigError message, unless optional', () => {
    const missingSecret: V1Container = { name: 'c', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'nope', key: 'k' } } }] };
    assert.deepEqual(resolveEnv(pod, missingSecret, sources()), { ok: false, message: 'secret "nope" not found' });
    const missingKey: V1Container = { name: 'c', env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'settings', key: 'nokey' } } }] };
    assert.deepEqual(resolveEnv(pod, missingKey, sources()), { ok: false, message: "couldn't find key nokey in ConfigMap shop/settings" });
    const optional: V1Container = {
      name: 'c',
      envFrom: [{ configMapRef: { name: 'absent', optional: true } }],
      env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'nope', key: 'k', optional: true } } }],
    };
    assert.deepEqual(resolveEnv(pod, optional, sources()), { ok: true, env: {} });
  });
  it('lists the Secrets and ConfigMaps a container needs', () => {
    const container: V1Container = {
      name: 'c',
      envFrom: [{ secretRef: { name: 's1' } }],
      env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cm1', key: 'k' } } }],
    };
    const refs = referencedSources(container);
    assert.deepEqual([...refs.secrets], ['s1']);
    assert.deepEqual([...refs.configMaps], ['cm1']);
  });
});

describe('service link variables', () => {
  const services: V1Service[] = [
    { metadata: { name: 'nixery-registry', namespace: 'shop' }, spec: { clusterIP: '127.96.0.5', ports: [{ name: 'http', port: 80 }] } },
    { metadata: { name: 'kubernetes', namespace: 'default' }, spec: { clusterIP: '127.96.0.1', ports: [{ name: 'https', port: 443 }] } },
    { metadata: { name: 'elsewhere', namespace: 'other' }, spec: { clusterIP: '127.96.0.9', ports: [{ port: 1 }] } },
  ];
  it('names Services of the pod namespace, plus kubernetes from default', () => {
    const env = serviceLinkEnv(services, 'shop', true);
    assert.equal(env.NIXERY_REGISTRY_SERVICE_HOST, '127.96.0.5');
    assert.equal(env.NIXERY_REGISTRY_SERVICE_PORT_HTTP, '80');
    assert.equal(env.NIXERY_REGISTRY_PORT_80_TCP_ADDR, '127.96.0.5');
    assert.equal(env.KUBERNETES_SERVICE_HOST, '127.96.0.1');
    assert.equal(env.ELSEWHERE_SERVICE_HOST, undefined);
  });
  it('enableServiceLinks: false keeps only the kubernetes Service', () => {
    assert.deepEqual(Object.keys(serviceLinkEnv(services, 'shop', false)).filter((k) => k.endsWith('_SERVICE_HOST')), ['KUBERNETES_SERVICE_HOST']);
  });
});
