// Stand-ins for what a reconciler reads and calls, so its decisions are unit tests: informer
// caches that hold the objects a test gives, and the errors the API server answers with.
import { ApiException, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';

export function cacheOf<T extends KubernetesObject>(...objects: T[]): ObjectCache<T> {
  return {
    get: (name, namespace) => objects.find((o) => o.metadata?.name === name && o.metadata?.namespace === namespace),
    list: (namespace) => objects.filter((o) => namespace === undefined || o.metadata?.namespace === namespace),
  };
}

/** What the generated clients throw for a non-2xx answer. */
export function apiError(code: number): ApiException<unknown> {
  return new ApiException(code, `HTTP-Code: ${code}`, {}, {});
}
