// The NixeryInstance and NixImage the unit tests start from, as the API server returns them
// after defaulting.
import type { NixeryInstance, NixImage } from '../api/types.ts';

export function testInstance(spec: Partial<NixeryInstance['spec']> = {}, metadata: Partial<NixeryInstance['metadata']> = {}): NixeryInstance {
  return {
    apiVersion: 'nixery.dev/v1alpha1',
    kind: 'NixeryInstance',
    metadata: { name: 'nixery', namespace: 'team-a', uid: 'uid-1', generation: 1, ...metadata },
    spec: {
      image: 'ghcr.io/nixery-operator/nixery:0.1.0',
      replicas: 1,
      port: 8080,
      storage: { persistentVolume: { size: '10Gi', accessModes: ['ReadWriteOnce'] } },
      nixTimeout: 60,
      service: { type: 'ClusterIP', port: 5000 },
      onDemand: true,
      layerCompression: 'gzip',
      ...spec,
    },
  };
}

export function testImage(spec: Partial<NixImage['spec']> = {}, metadata: Partial<NixImage['metadata']> = {}): NixImage {
  return {
    apiVersion: 'nixery.dev/v1alpha1',
    kind: 'NixImage',
    metadata: { name: 'toolbox', namespace: 'team-a', uid: 'img-uid', generation: 1, creationTimestamp: new Date('2026-01-01T00:00:00Z'), ...metadata },
    spec: { instanceRef: { name: 'nixery' }, packages: ['git', 'htop', 'hello'], tag: 'v1', ...spec },
  };
}
