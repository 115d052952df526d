import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Endpoints, V1Pod, V1Service } from '@kubernetes/client-node';
import { hostsFile, registryAddress, resolveServiceHost, serviceRecords } from './hosts.ts';

const services: V1Service[] = [
  { metadata: { name: 'registry', namespace: 'nixery' }, spec: { clusterIP: '127.96.0.4', ports: [{ port: 80 }] } },
  { metadata: { name: 'db', namespace: 'shop' }, spec: { clusterIP: '127.96.0.9', ports: [{ port: 5432 }] } },
  { metadata: { name: 'peers', namespace: 'shop' }, spec: { clusterIP: 'None', ports: [{ port: 1 }] } },
  { metadata: { name: 'pending', namespace: 'shop' }, spec: { ports: [{ port: 1 }] } },
];
const endpoints: V1Endpoints[] = [
  { metadata: { name: 'peers', namespace: 'shop' }, subsets: [{ addresses: [{ ip: '127.244.0.2' }, { ip: '127.244.0.3' }] }] },
];
const records = serviceRecords(services, endpoints);

describe('hosts file of a pod', () => {
  const pod: V1Pod = { metadata: { name: 'web-abc', namespace: 'shop' }, spec: { containers: [], hostAliases: [{ ip: '127.1.2.3', hostnames: ['alias.local'] }] } };
  const text = hostsFile(pod, '127.244.0.8', records);
  const lines = text.split('\n');

  it('starts with localhost and names the pod by its IP', () => {
    assert.ok(lines.includes('127.0.0.1\tlocalhost'));
    assert.ok(lines.includes('127.244.0.8\tweb-abc'));
    assert.ok(lines.includes('127.1.2.3\talias.local'));
  });
  it('names a Service of the same namespace with its short name too', () => {
    assert.ok(lines.includes('127.96.0.9\tdb.shop.svc.cluster.local db.shop.svc db.shop db'));
  });
  it('names a Service of another namespace only with qualified names', () => {
    assert.ok(lines.includes('127.96.0.4\tregistry.nixery.svc.cluster.local registry.nixery.svc registry.nixery'));
  });
  it('a headless Service resolves to its ready pods; one without an address is absent', () => {
    assert.ok(lines.includes('127.244.0.2\tpeers.shop.svc.cluster.local peers.shop.svc peers.shop peers'));
    assert.ok(lines.includes('127.244.0.3\tpeers.shop.svc.cluster.local peers.shop.svc peers.shop peers'));
    assert.ok(!text.includes('pending'));
  });
  it('a pod with hostname and subdomain gets its fully qualified name', () => {
    const named: V1Pod = { metadata: { name: 'p', namespace: 'shop' }, spec: { containers: [], hostname: 'h', subdomain: 'peers' } };
    assert.ok(hostsFile(named, '127.244.0.2', []).includes('127.244.0.2\th.peers.shop.svc.cluster.local\th\n'));
  });
});

describe('registry hosts named by Service', () => {
  it('resolves fully qualified Service names to the ClusterIP, keeping the port', () => {
    assert.equal(resolveServiceHost('registry.nixery.svc.cluster.local:8080', records), '127.96.0.4:8080');
    assert.equal(resolveServiceHost('registry.nixery.svc', records), '127.96.0.4');
  });
  it('leaves other hosts alone', () => {
    assert.equal(resolveServiceHost('registry.nixery:80', records), undefined);
    assert.equal(resolveServiceHost('unknown.nixery.svc.cluster.local:80', records), undefined);
    assert.equal(resolveServiceHost('127.0.0.1:5000', records), undefined);
  });
});

describe('where the node pulls from', () => {
  it('a Service name, localhost or a loopback address; nothing else', () => {
    assert.deepEqual(registryAddress('registry.nixery.svc.cluster.local:8080', records), { address: '127.96.0.4:8080' });
    assert.deepEqual(registryAddress('localhost:5000', records), { address: 'localhost:5000' });
    assert.deepEqual(registryAddress('127.0.0.1:5000', records), { address: '127.0.0.1:5000' });
    assert.match((registryAddress('missing.nixery.svc.cluster.local:80', records) as { error: string }).error, /names no Service/);
    assert.match((registryAddress('ghcr.io', records) as { error: string }).error, /reaches nothing else/);
  });
});
