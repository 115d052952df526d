// The Endpoints controller's I/O: one Endpoints object per Service with a selector, kept equal
// to endpointsFor(); Endpoints of Services without a selector are left to their authors.
import type { V1Endpoints } from '@kubernetes/client-node';
import type { ControllerContext } from './controller-context.ts';
import { endpointsFor } from './endpoints.ts';
import { isConflict, isNotFound, keyOf, mergePatch, splitKey, WorkQueue, type Key } from './kube.ts';
import { comparable } from './owners.ts';

/** The label newer controllers put on the Endpoints they manage; only those are deleted with their Service. */
export const MANAGED_BY = 'endpoints.kubernetes.io/managed-by';
const MANAGER = 'endpoint-controller';

export function startEndpointsController(ctx: ControllerContext): WorkQueue {
  const { kube, caches } = ctx;

  async function reconcile(key: Key): Promise<void> {
    const { namespace, name } = splitKey(key);
    const service = caches.services.get(namespace, name);
    const existing = caches.endpoints.get(namespace, name);
    if (!service) {
      if (existing?.metadata?.labels?.[MANAGED_BY] === MANAGER) {
        await kube.core.deleteNamespacedEndpoints({ namespace, name }).catch((error: unknown) => {
          if (!isNotFound(error)) throw error;
        });
      }
      return;
    }
    const desired = endpointsFor(service, caches.pods.list(namespace), ctx.nodeName);
    if (!desired) return;
    desired.metadata!.labels = { ...desired.metadata?.labels, [MANAGED_BY]: MANAGER };
    const want = { labels: desired.metadata?.labels, subsets: desired.subsets ?? [] };
    if (!existing) {
      try {
        await kube.core.createNamespacedEndpoints({ namespace, body: desired });
      } catch (error) {
        if (!isConflict(error)) throw error;
        queue.addAfter(key, 100);
      }
      return;
    }
    if (comparable(want) === comparable({ labels: existing.metadata?.labels ?? {}, subsets: existing.subsets ?? [] })) return;
    const body: Partial<V1Endpoints> = { metadata: { labels: want.labels }, subsets: want.subsets };
    await kube.core.patchNamespacedEndpoints({ namespace, name, body }, mergePatch);
  }

  const queue = new WorkQueue('endpoints', reconcile, ctx.log);
  caches.services.on((service) => queue.add(keyOf(service)));
  caches.endpoints.on((endpoints) => queue.add(keyOf(endpoints)));
  // A pod's labels may have changed, so every Service of its namespace is looked at again.
  caches.pods.on((pod) => {
    for (const service of caches.services.list(pod.metadata?.namespace)) queue.add(keyOf(service));
  });
  for (const service of caches.services.list()) queue.add(keyOf(service));
  return queue;
}
