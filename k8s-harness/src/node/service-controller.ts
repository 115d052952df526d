// Services on this node: a ClusterIP for Services that have none (the API server normally
// allocates one), the LoadBalancer ingress address, and the proxy's listeners.
import type { V1Service } from '@kubernetes/client-node';
import type { ControllerContext } from './controller-context.ts';
import { allocate, type Cidr } from './ipam.ts';
import { isNotFound, keyOf, mergePatch, splitKey, WorkQueue, type Key } from './kube.ts';
import type { ServiceProxy } from './proxy.ts';
import { clusterAddress, desiredListeners } from './services.ts';

export function startServiceController(ctx: ControllerContext, range: Cidr, proxy: ServiceProxy): WorkQueue {
  const { kube, caches } = ctx;

  async function reconcile(key: Key): Promise<void> {
    const { namespace, name } = splitKey(key);
    const service = caches.services.get(namespace, name);
    if (service) await allocateAndReport(service, namespace, name);
    await proxy.sync(desiredListeners(caches.services.list(), range));
  }

  async function allocateAndReport(service: V1Service, namespace: string, name: string): Promise<void> {
    const type = service.spec?.type ?? 'ClusterIP';
    if (type !== 'ExternalName' && !service.spec?.clusterIP) {
      const used = new Set(caches.services.list().flatMap((s) => clusterAddress(s, range) ?? []));
      const ip = allocate(range, used);
      if (!ip) throw new Error(`no free ClusterIP left in the service range`);
      await kube.core.patchNamespacedService({ namespace, name, body: { spec: { clusterIP: ip, clusterIPs: [ip] } } }, mergePatch).catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
      return;
    }
    const address = clusterAddress(service, range);
    if (type === 'LoadBalancer' && address && !(service.status?.loadBalancer?.ingress ?? []).some((i) => i.ip === address)) {
      await kube.core
        .patchNamespacedServiceStatus({ namespace, name, body: { status: { loadBalancer: { ingress: [{ ip: address, ipMode: 'VIP' }] } } } }, mergePatch)
        .catch((error: unknown) => {
          if (!isNotFound(error)) throw error;
        });
    }
  }

  const queue = new WorkQueue('service', reconcile, ctx.log, 1);
  caches.services.on((service) => queue.add(keyOf(service)));
  for (const service of caches.services.list()) queue.add(keyOf(service));
  queue.add('/');
  return queue;
}
