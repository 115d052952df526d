// Where pods reach an instance's registry.
import type { NixeryInstance } from '../api/types.ts';

/** The in-cluster address pods pull from: the Service's DNS name and port. */
export function instanceEndpoint(instance: NixeryInstance): string {
  return `${instance.metadata.name}.${instance.metadata.namespace}.svc.cluster.local:${instance.spec.service.port}`;
}
