// The control loops a real control plane runs next to the apiserver that the API's own
// behaviour depends on: the garbage collector (owner references, foreground/orphan
// deletion), the namespace controller (deleting a namespace's content), CRD instance
// cleanup, the service-account controller's `default` ServiceAccount, the root CA publisher's
// `kube-root-ca.crt` ConfigMaps, the apiserver's own `default/kubernetes` Service, and (at start)
// its bootstrap RBAC policy.
import { ApiError } from './errors.ts';
import type { Api } from './api.ts';
import type { WriteOptions } from './api-options.ts';
import { deleteObject } from './deletion.ts';
import { metaOf, obj, type JsonObject } from './json.ts';
import { CRD_CLEANUP_FINALIZER } from './crd.ts';
import type { ResourceInfo } from './resources.ts';
import { ROOT_CA_CONFIGMAP, rootCaConfigMap } from './serviceaccounts.ts';
import { bootstrapClusterRoleBindings, bootstrapClusterRoles, reconcileBootstrap } from './bootstrap-rbac.ts';

const CONTROLLER_WRITE: WriteOptions = { dryRun: false, fieldManager: 'kube-controller-manager', fieldValidation: 'Ignore', userAgent: 'kube-controller-manager' };
const APISERVER_WRITE: WriteOptions = { dryRun: false, fieldManager: 'kube-apiserver', fieldValidation: 'Ignore', userAgent: 'kube-apiserver' };

/** Where clients inside the cluster reach this server: the `kubernetes` Service's endpoint. */
export interface ApiServerEndpoint {
  ip: string;
  port: number;
}

/** The `default/kubernetes` Service: the first address of the Service range, port 443 (`https`). */
export function kubernetesService(clusterIP: string, endpoint: ApiServerEndpoint): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' } },
    spec: { type: 'ClusterIP', clusterIP, sessionAffinity: 'None', ports: [{ name: 'https', protocol: 'TCP', port: 443, targetPort: endpoint.port }] },
  };
}

export function kubernetesEndpoints(endpoint: ApiServerEndpoint): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } },
    subsets: [{ addresses: [{ ip: endpoint.ip }], ports: [{ name: 'https', port: endpoint.port, protocol: 'TCP' }] }],
  };
}

interface Entry {
  res: ResourceInfo;
  object: JsonObject;
}

function meta(o: JsonObject): JsonObject {
  return obj(o.metadata);
}

function ownerRefs(o: JsonObject): JsonObject[] {
  const refs = meta(o).ownerReferences;
  return Array.isArray(refs) ? refs.map(obj) : [];
}

/** Equal as JSON values, whatever the key order. */
function same(a: unknown, b: unknown): boolean {
  const canonical = (v: unknown): string =>
    JSON.stringify(v, (_k, x: unknown) => (typeof x === 'object' && x !== null && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as JsonObject).sort(([p], [q]) => (p < q ? -1 : 1))) : x));
  return canonical(a) === canonical(b);
}

function isNotFound(err: unknown): boolean {
  return err instanceof ApiError && (err.code === 404 || err.code === 409);
}

export class Controllers {
  private readonly api: Api;
  private readonly caCertPem: string;
  private endpoint: ApiServerEndpoint | undefined;
  private scheduled = false;
  private stopped = false;
  private readonly unsubscribe: () => void;
  private timer: NodeJS.Timeout | undefined;

  constructor(api: Api, options: { caCertPem?: string } = {}) {
    this.api = api;
    this.caCertPem = options.caCertPem ?? '';
    this.unsubscribe = api.store.subscribe(api.store.resourceVersion, () => this.schedule());
    api.afterCreate.push((res, object) => {
      if (res.kind === 'Namespace' && res.group === '') this.namespaceContent(String(meta(object).name));
    });
    this.schedule();
  }

  /** Once the server listens: the `kubernetes` Service and its Endpoints point here from now on. */
  serveAt(endpoint: ApiServerEndpoint): void {
    this.endpoint = endpoint;
    this.kubernetesService();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    // Asynchronous like real controllers: a client sees its write answered before the
    // consequences (dependents deleted, namespace emptied) happen.
    this.timer = setTimeout(() => {
      this.scheduled = false;
      if (this.stopped) return;
      try {
        this.runOnce();
      } catch (err) {
        process.stderr.write(`[apiserver] controller error: ${(err as Error).stack ?? String(err)}\n`);
      }
    }, 5);
  }

  runOnce(): void {
    this.bootstrapNamespaces();
    this.serviceAccounts();
    this.rootCaConfigMaps();
    this.kubernetesService();
    this.namespaces();
    this.crdCleanup();
    this.garbageCollect();
  }

  private resourceFor(storageKey: string): ResourceInfo | undefined {
    return this.api.registry.storageInfo(storageKey);
  }

  private everything(): Entry[] {
    const out: Entry[] = [];
    for (const key of this.api.store.storageKeys()) {
      const res = this.resourceFor(key);
      if (!res) continue;
      for (const object of this.api.store.list(key)) out.push({ res, object });
    }
    return out;
  }

  private write(res: ResourceInfo, next: JsonObject, options: WriteOptions = CONTROLLER_WRITE): void {
    const m = meta(next);
    const current = this.api.store.get(res.storageKey, String(m.namespace ?? ''), String(m.name));
    if (!current) return;
    try {
      this.api.commitUpdate(res, current, next, options, undefined, undefined);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private remove(res: ResourceInfo, o: JsonObject, policy: 'Background' | 'Foreground'): void {
    try {
      deleteObject(this.api, res, String(meta(o).namespace ?? ''), String(meta(o).name), { propagationPolicy: policy, preconditions: { uid: String(meta(o).uid) } });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  private withoutFinalizer(o: JsonObject, finalizer: string): JsonObject {
    const next = structuredClone(o);
    const m = metaOf(next);
    m.finalizers = ((m.finalizers as string[] | undefined) ?? []).filter((f) => f !== finalizer);
    return next;
  }

  bootstrapNamespaces(): void {
    const res = this.api.registry.find('', 'v1', 'namespaces');
    if (!res) return;
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      if (this.api.store.get('namespaces', '', name)) continue;
      this.api.create(res, '', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, CONTROLLER_WRITE);
    }
  }

  /** The bootstrap policy's ClusterRoles and ClusterRoleBindings (bootstrap-rbac.ts), once at start, as the post-start hook. */
  bootstrapRbac(): void {
    const kinds: Array<[string, JsonObject[], 'rules' | 'subjects']> = [
      ['clusterroles', bootstrapClusterRoles(), 'rules'],
      ['clusterrolebindings', bootstrapClusterRoleBindings(), 'subjects'],
    ];
    for (const [plural, objects, field] of kinds) {
      const res = this.api.registry.find('rbac.authorization.k8s.io', 'v1', plural);
      if (!res) continue;
      for (const desired of objects) {
        const current = this.api.store.get(res.storageKey, '', String(meta(desired).name));
        if (!current) this.api.create(res, '', desired, APISERVER_WRITE);
        else {
          const next = reconcileBootstrap(current, desired, field);
          if (next) this.write(res, next, APISERVER_WRITE);
        }
      }
    }
  }

  private serviceAccounts(only?: string): void {
    const res = this.api.registry.find('', 'v1', 'serviceaccounts');
    if (!res) return;
    for (const ns of this.api.store.list('namespaces')) {
      const name = String(meta(ns).name);
      if ((only !== undefined && name !== only) || meta(ns).deletionTimestamp !== undefined) continue;
      if (this.api.store.get('serviceaccounts', name, 'default')) continue;
      try {
        this.api.create(res, name, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: name } }, { ...CONTROLLER_WRITE, fieldManager: 'kube-controller-manager' });
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
      }
    }
  }

  private namespaceContent(namespace: string): void {
    this.serviceAccounts(namespace);
    this.rootCaConfigMaps(namespace);
  }

  /** Every active namespace has `kube-root-ca.crt` holding exactly this server's CA. */
  private rootCaConfigMaps(only?: string): void {
    const res = this.api.registry.find('', 'v1', 'configmaps');
    if (!res || !this.caCertPem) return;
    for (const ns of this.api.store.list('namespaces')) {
      const name = String(meta(ns).name);
      if ((only !== undefined && name !== only) || meta(ns).deletionTimestamp !== undefined) continue;
      const desired = rootCaConfigMap(name, this.caCertPem);
      const current = this.api.store.get('configmaps', name, ROOT_CA_CONFIGMAP);
      try {
        if (!current) this.api.create(res, name, desired, CONTROLLER_WRITE);
        else if (meta(current).deletionTimestamp === undefined && !same(current.data, desired.data)) {
          this.write(res, { ...structuredClone(current), data: desired.data });
        }
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
      }
    }
  }

  /**
   * The apiserver's own Service: created at the first address of the Service range, recreated if
   * that range changed (a ClusterIP is immutable), its target port and Endpoints following the
   * port this server listens on now.
   */
  private kubernetesService(): void {
    const endpoint = this.endpoint;
    const services = this.api.registry.find('', 'v1', 'services');
    const endpointsRes = this.api.registry.find('', 'v1', 'endpoints');
    const ns = this.api.store.get('namespaces', '', 'default');
    if (!endpoint || !services || !endpointsRes || !ns || meta(ns).deletionTimestamp !== undefined) return;
    const clusterIP = `${this.api.serviceIpPrefix}.0.1`;
    const desired = kubernetesService(clusterIP, endpoint);
    try {
      let current = this.api.store.get('services', 'default', 'kubernetes');
      if (current && obj(current.spec).clusterIP !== clusterIP) {
        deleteObject(this.api, services, 'default', 'kubernetes', { preconditions: { uid: String(meta(current).uid) } });
        current = undefined;
      }
      if (!current) this.api.create(services, 'default', desired, APISERVER_WRITE);
      else if (!same(obj(current.spec).ports, obj(desired.spec).ports)) {
        this.write(services, { ...structuredClone(current), spec: { ...obj(current.spec), ports: obj(desired.spec).ports } }, APISERVER_WRITE);
      }
      const endpoints = kubernetesEndpoints(endpoint);
      const currentEndpoints = this.api.store.get('endpoints', 'default', 'kubernetes');
      if (!currentEndpoints) this.api.create(endpointsRes, 'default', endpoints, APISERVER_WRITE);
      else if (!same(currentEndpoints.subsets, endpoints.subsets)) {
        this.write(endpointsRes, { ...structuredClone(currentEndpoints), subsets: endpoints.subsets }, APISERVER_WRITE);
      }
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
  }

  private namespaces(): void {
    const nsRes = this.api.registry.find('', 'v1', 'namespaces');
    if (!nsRes) return;
    for (const ns of this.api.store.list('namespaces')) {
      if (meta(ns).deletionTimestamp === undefined) continue;
      const name = String(meta(ns).name);
      let remaining = 0;
      for (const key of this.api.store.storageKeys()) {
        const res = this.resourceFor(key);
        if (!res?.namespaced) continue;
        for (const o of this.api.store.list(key, name)) {
          remaining++;
          if (meta(o).deletionTimestamp === undefined) this.remove(res, o, 'Background');
        }
      }
      if (remaining > 0) continue;
      const specFinalizers = (obj(ns.spec).finalizers as string[] | undefined) ?? [];
      if (specFinalizers.includes('kubernetes')) {
        const next = structuredClone(ns);
        next.spec = { ...obj(next.spec), finalizers: specFinalizers.filter((f) => f !== 'kubernetes') };
        this.write(nsRes, next);
      }
    }
  }

  private crdCleanup(): void {
    const crdRes = this.api.registry.find('apiextensions.k8s.io', 'v1', 'customresourcedefinitions');
    if (!crdRes) return;
    for (const crd of this.api.store.list(crdRes.storageKey)) {
      const m = meta(crd);
      if (m.deletionTimestamp === undefined || !((m.finalizers as string[] | undefined) ?? []).includes(CRD_CLEANUP_FINALIZER)) continue;
      const res = this.api.registry.customFor(String(m.name)).find((r) => r.storageVersion) ?? this.api.registry.customFor(String(m.name))[0];
      const instances = res ? this.api.store.list(res.storageKey) : [];
      for (const o of instances) if (res && meta(o).deletionTimestamp === undefined) this.remove(res, o, 'Background');
      if (instances.length === 0) this.write(crdRes, this.withoutFinalizer(crd, CRD_CLEANUP_FINALIZER));
    }
  }

  private garbageCollect(): void {
    const all = this.everything();
    const byUid = new Map<string, Entry>();
    for (const e of all) byUid.set(String(meta(e.object).uid), e);
    const ownerOf = (e: Entry, ref: JsonObject): Entry | undefined => {
      const owner = byUid.get(String(ref.uid));
      if (!owner) return undefined;
      // a namespaced owner must live in the dependent's namespace
      if (owner.res.namespaced && meta(owner.object).namespace !== meta(e.object).namespace) return undefined;
      return owner;
    };
    const dependentsOf = new Map<string, Entry[]>();
    for (const e of all) {
      for (const ref of ownerRefs(e.object)) {
        const list = dependentsOf.get(String(ref.uid)) ?? [];
        list.push(e);
        dependentsOf.set(String(ref.uid), list);
      }
    }

    // Owners deleted with propagationPolicy=Orphan: detach dependents, then let the owner go.
    for (const e of all) {
      const m = meta(e.object);
      if (m.deletionTimestamp === undefined || !((m.finalizers as string[] | undefined) ?? []).includes('orphan')) continue;
      for (const d of dependentsOf.get(String(m.uid)) ?? []) {
        const next = structuredClone(d.object);
        const refs = ownerRefs(next).filter((r) => r.uid !== m.uid);
        const nm = metaOf(next);
        if (refs.length > 0) nm.ownerReferences = refs;
        else delete nm.ownerReferences;
        this.write(d.res, next);
      }
      const fresh = this.api.store.get(e.res.storageKey, String(m.namespace ?? ''), String(m.name));
      if (fresh) this.write(e.res, this.withoutFinalizer(fresh, 'orphan'));
    }

    // Dependents whose owners are all gone (or waiting for them in foreground deletion) go too.
    for (const e of all) {
      const refs = ownerRefs(e.object);
      if (refs.length === 0) continue;
      const m = meta(e.object);
      const owners = refs.map((r) => ({ ref: r, owner: ownerOf(e, r) }));
      const waiting = owners.filter((o) => o.owner && meta(o.owner.object).deletionTimestamp !== undefined && ((meta(o.owner.object).finalizers as string[] | undefined) ?? []).includes('foregroundDeletion'));
      const dangling = owners.filter((o) => !o.owner);
      const solid = owners.length - waiting.length - dangling.length;
      if (solid > 0) {
        if (dangling.length > 0) {
          const next = structuredClone(e.object);
          metaOf(next).ownerReferences = refs.filter((r) => owners.find((o) => o.ref === r)?.owner !== undefined);
          this.write(e.res, next);
        }
        continue;
      }
      if (m.deletionTimestamp !== undefined) continue;
      const hasDependents = (dependentsOf.get(String(m.uid)) ?? []).length > 0;
      this.remove(e.res, e.object, waiting.length > 0 && hasDependents ? 'Foreground' : 'Background');
    }

    // Owners in foreground deletion finish once no dependent that blocks them remains.
    for (const e of this.everything()) {
      const m = meta(e.object);
      if (m.deletionTimestamp === undefined || !((m.finalizers as string[] | undefined) ?? []).includes('foregroundDeletion')) continue;
      const blocking = this.everything().filter((d) => ownerRefs(d.object).some((r) => r.uid === m.uid && r.blockOwnerDeletion === true));
      if (blocking.length === 0) this.write(e.res, this.withoutFinalizer(e.object, 'foregroundDeletion'));
    }
  }
}
