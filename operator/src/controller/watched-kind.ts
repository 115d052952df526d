// One kind the operator watches, cluster-wide or only in the namespaces it was given (then its
// RBAC can be namespaced Roles). Either way it is one cache and one event source to the
// reconcilers.
import { KubernetesObjectApi, makeInformer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';

export interface KindRef {
  apiVersion: string;
  kind: string;
  plural: string;
}

type Verb = 'add' | 'update' | 'delete';
type Informer<T extends KubernetesObject> = ReturnType<typeof makeInformer<T>>;

/** The REST path of a kind's collection, in a namespace or across all. */
export function collectionPath(ref: KindRef, namespace?: string): string {
  const base = ref.apiVersion === 'v1' ? '/api/v1' : `/apis/${ref.apiVersion}`;
  return namespace === undefined ? `${base}/${ref.plural}` : `${base}/namespaces/${namespace}/${ref.plural}`;
}

export class WatchedKind<T extends KubernetesObject> implements ObjectCache<T> {
  private readonly informers = new Map<string | undefined, Informer<T>>();

  constructor(kc: KubeConfig, ref: KindRef, options: { namespaces?: readonly string[]; labelSelector?: string; onError: (informer: Informer<T>, error: unknown) => void }) {
    const api = KubernetesObjectApi.makeApiClient(kc);
    const scopes: (string | undefined)[] = options.namespaces?.length ? [...options.namespaces] : [undefined];
    for (const namespace of scopes) {
      const list = () => api.list<T>(ref.apiVersion, ref.kind, namespace, undefined, undefined, undefined, undefined, options.labelSelector);
      const informer = makeInformer<T>(kc, collectionPath(ref, namespace), list, options.labelSelector);
      informer.on('error', (error: unknown) => options.onError(informer, error));
      this.informers.set(namespace, informer);
    }
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cacheFor(namespace)?.get(name, namespace);
  }

  list(namespace?: string): ReadonlyArray<T> {
    if (namespace !== undefined) return this.cacheFor(namespace)?.list(namespace) ?? [];
    return [...this.informers.values()].flatMap((i) => [...i.list()]);
  }

  on(verb: Verb, callback: (object: T) => void): void {
    for (const informer of this.informers.values()) informer.on(verb, callback);
  }

  async start(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.start()));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  /** The cluster-wide informer holds every namespace; otherwise only the namespace's own. */
  private cacheFor(namespace: string | undefined): Informer<T> | undefined {
    return this.informers.get(undefined) ?? (namespace === undefined ? undefined : this.informers.get(namespace));
  }
}
