import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Service } from '@kubernetes/client-node';
import { parseCidr } from './ipam.ts';
import { clusterAddress, desiredListeners } from './services.ts';

const range = parseCidr('127.96.0.0/16');
const svc = (name: string, spec: V1Service['spec']): V1Service => ({ metadata: { name, namespace: 'ns' }, spec });

describe('Service addresses on this node', () => {
  it('a loopback ClusterIP is used as it is', () => {
    assert.equal(clusterAddress(svc('a', { clusterIP: '127.96.0.9' }), range), '127.96.0.9');
  });
  it('any other ClusterIP is served at its loopback twin in the range', () => {
    assert.equal(clusterAddress(svc('a', { clusterIP: '10.96.3.12' }), range), '127.96.3.12');
  });
  it('headless and ExternalName Services have no address', () => {
    assert.equal(clusterAddress(svc('a', { clusterIP: 'None' }), range), undefined);
    assert.equal(clusterAddress(svc('a', { type: 'ExternalName', externalName: 'x.org' }), range), undefined);
  });
});

describe('proxy listeners', () => {
  it('one per TCP port at the Service address, plus nodePorts on 127.0.0.1', () => {
    const listeners = desiredListeners([
      svc('web', { clusterIP: '127.96.0.5', ports: [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }] }),
      svc('np', { type: 'NodePort', clusterIP: '127.96.0.6', ports: [{ port: 8080, nodePort: 30080 }] }),
    ], range);
    assert.deepEqual(listeners.map((l) => [l.key, l.service]), [
      ['127.96.0.5:80', 'web'], ['127.96.0.6:8080', 'np'], ['127.0.0.1:30080', 'np'],
    ]);
  });
});
