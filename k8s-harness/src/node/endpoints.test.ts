import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod, V1Service } from '@kubernetes/client-node';
import { endpointsFor, readyBackends } from './endpoints.ts';

const service: V1Service = {
  metadata: { name: 'web', namespace: 'shop', labels: { team: 'a' } },
  spec: { selector: { app: 'web' }, clusterIP: '127.96.0.3', ports: [{ name: 'http', port: 80, targetPort: 'web' }] },
};
function pod(name: string, ip: string, ready: boolean, extra: Partial<V1Pod['metadata']> = {}, phase = 'Running'): V1Pod {
  return {
    metadata: { name, namespace: 'shop', uid: `${name}-uid`, labels: { app: 'web' }, ...extra },
    spec: { nodeName: 'nixery-node', containers: [{ name: 'c', ports: [{ name: 'web', containerPort: 8080 }] }] },
    status: { phase, podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

describe('Endpoints of a Service', () => {
  it('lists ready pods as addresses and others as notReadyAddresses, named ports resolved', () => {
    const endpoints = endpointsFor(service, [
      pod('b', '127.244.0.5', true),
      pod('a', '127.244.0.4', false),
      pod('gone', '127.244.0.6', true, { deletionTimestamp: new Date() }),
      pod('done', '127.244.0.7', true, {}, 'Succeeded'),
      { ...pod('other', '127.244.0.8', true), metadata: { name: 'other', namespace: 'shop', labels: { app: 'db' } } },
    ], 'nixery-node');
    assert.deepEqual(endpoints?.metadata, { name: 'web', namespace: 'shop', labels: { team: 'a' } });
    assert.equal(endpoints?.subsets?.length, 1);
    const [subset] = endpoints!.subsets!;
    assert.deepEqual(subset?.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    assert.deepEqual(subset?.addresses?.map((a) => a.ip), ['127.244.0.5']);
    assert.deepEqual(subset?.notReadyAddresses?.map((a) => a.ip), ['127.244.0.4']);
    assert.deepEqual(subset?.addresses?.[0]?.targetRef, { kind: 'Pod', name: 'b', namespace: 'shop', uid: 'b-uid' });
    assert.deepEqual(readyBackends(endpoints, service.spec!.ports![0]!), [{ ip: '127.244.0.5', port: 8080 }]);
  });
  it('leaves Services without a selector to whoever writes their Endpoints', () => {
    assert.equal(endpointsFor({ ...service, spec: { ...service.spec, selector: {} } }, [], 'n'), undefined);
  });
});
