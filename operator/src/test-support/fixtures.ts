// The NixeryInstance the unit tests start from, as the API server returns it after defaulting.
import type { NixeryInstance } from '../api/types.ts';

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
      ...spec,
    },
  };
}
