// Wires informers, controllers, leader election and the health/metrics server together.
import http from 'node:http';
import os from 'node:os';
import type { KubeConfig, KubernetesObject, ObjectCache, V1Job, V1Service, V1ServiceAccount } from '@kubernetes/client-node';
import type { Logger } from '@nixery/registry/operator-api';
import { API_VERSION, FIELD_MANAGER, NIX_IMAGE, NIXERY_INSTANCE, type NixeryInstance, type NixImage } from './api/types.ts';
import { Controller } from './controller/controller.ts';
import { LeaderElector } from './controller/leader-election.ts';
import { WatchedKind, type KindRef } from './controller/watched-kind.ts';
import { ImageReconciler } from './image/reconciler.ts';
import { Applier } from './kube/applier.ts';
import { makeApiClients } from './kube/client.ts';
import { MANAGED_BY_LABEL } from './kube/labels.ts';
import { INSTANCE_NAMESPACE_LABEL } from './instance/auth.ts';
import type { PrivilegeGates } from './instance/gates.ts';
import { InstanceReconciler } from './instance/reconciler.ts';
import { createOperatorMetrics, type OperatorMetrics } from './metrics.ts';

export interface ManagerOptions {
  kc: KubeConfig;
  log: Logger;
  healthPort: number;
  healthHost?: string;
  leaderElection: { enabled: boolean; namespace: string; identity?: string };
  resyncSeconds: number;
  workers: number;
  /** Watch only these namespaces (the RBAC can then be namespaced Roles); all when unset. */
  namespaces?: string[];
  /** What NixeryInstance authors may ask for; the reconciler's defaults when unset. */
  gates?: PrivilegeGates;
  /** Where spec.nodeConfig's DaemonSets (and their CA copies) go: the operator's own namespace in main.ts. */
  nodeConfigNamespace: string;
}

export class Manager {
  private readonly options: ManagerOptions;
  readonly metrics: OperatorMetrics = createOperatorMetrics();
  private readonly watched: WatchedKind<KubernetesObject>[] = [];
  private readonly controllers: Controller[] = [];
  private elector: LeaderElector | undefined;
  private server: http.Server | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private synced = false;
  private readonly abort = new AbortController();

  constructor(options: ManagerOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    await this.startHealthServer();
    const { leaderElection, kc, log } = this.options;
    if (leaderElection.enabled) {
      this.elector = new LeaderElector(kc, {
        namespace: leaderElection.namespace,
        name: 'nixery-operator',
        identity: leaderElection.identity ?? `${os.hostname()}-${process.pid}`,
        log,
      });
      log.info('waiting for the leader lease', { namespace: leaderElection.namespace });
      await this.elector.acquire(this.abort.signal, () => {
        // Another replica may act now; stopping at once is the only safe answer.
        log.error('leadership lost; exiting');
        process.exit(1);
      });
      if (this.abort.signal.aborted) return;
    }
    await this.startControllers();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    for (const controller of this.controllers) controller.stop();
    for (const kind of this.watched) await kind.stop();
    await this.elector?.release();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async startControllers(): Promise<void> {
    const { kc, log } = this.options;
    const onWrite = (kind: string) => this.metrics.writes.inc({ kind });
    const selector = `${MANAGED_BY_LABEL}=${FIELD_MANAGER}`;
    // With --namespaces, the node-config namespace is watched too for what spec.nodeConfig puts
    // there, once the operator may make it (the chart grants the rights there only then).
    const nodeConfigScope = this.options.gates?.allowNodeConfig ? { extraNamespaces: [this.options.nodeConfigNamespace] } : {};

    const instances = this.watch<NixeryInstance>({ apiVersion: API_VERSION, kind: NIXERY_INSTANCE.kind, plural: NIXERY_INSTANCE.plural });
    const images = this.watch<NixImage>({ apiVersion: API_VERSION, kind: NIX_IMAGE.kind, plural: NIX_IMAGE.plural });
    // Owned objects carry the managed-by label: the caches hold only what the operator made.
    const owned: Record<string, WatchedKind<KubernetesObject>> = {
      ServiceAccount: this.watch({ apiVersion: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts' }, selector),
      PersistentVolumeClaim: this.watch({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', plural: 'persistentvolumeclaims' }, selector),
      Service: this.watch({ apiVersion: 'v1', kind: 'Service', plural: 'services' }, selector),
      Deployment: this.watch({ apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' }, selector),
      DaemonSet: this.watch({ apiVersion: 'apps/v1', kind: 'DaemonSet', plural: 'daemonsets' }, selector, nodeConfigScope),
      PodDisruptionBudget: this.watch({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets' }, selector),
      // The operator's own Secrets and ConfigMaps only (the selector): generated credentials,
      // certificates, policies, and the pull Secrets it keeps in other namespaces.
      Secret: this.watch({ apiVersion: 'v1', kind: 'Secret', plural: 'secrets' }, selector),
      ConfigMap: this.watch({ apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps' }, selector, nodeConfigScope),
      ClusterRoleBinding: this.watch({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings' }, selector, { clusterScoped: true }),
    };
    const jobs = this.watch<V1Job>({ apiVersion: 'batch/v1', kind: 'Job', plural: 'jobs' }, selector);

    const clients = makeApiClients(kc);
    const reconciler = new InstanceReconciler({
      clients,
      applier: new Applier(kc, onWrite),
      caches: { instances, images, owned },
      log,
      onWrite,
      nodeConfigNamespace: this.options.nodeConfigNamespace,
      ...(this.options.gates ? { gates: this.options.gates } : {}),
    });
    const controller = new Controller('nixeryinstance', reconciler.reconcile, { log, metrics: this.metrics, workers: this.options.workers });
    const imageReconciler = new ImageReconciler({
      clients,
      caches: {
        images,
        instances,
        jobs,
        services: owned.Service as unknown as ObjectCache<V1Service>,
        serviceAccounts: owned.ServiceAccount as unknown as ObjectCache<V1ServiceAccount>,
      },
      log,
      onWrite,
    });
    const imageController = new Controller('niximage', imageReconciler.reconcile, { log, metrics: this.metrics, workers: this.options.workers });
    this.controllers.push(controller, imageController);

    const key = (obj: KubernetesObject) => `${obj.metadata!.namespace}/${obj.metadata!.name}`;
    const enqueueInstance = (obj: KubernetesObject) => controller.queue.add(key(obj));
    const enqueueImage = (obj: KubernetesObject) => imageController.queue.add(key(obj));
    const ownerKey = (obj: KubernetesObject, kind: string) => {
      const owner = obj.metadata?.ownerReferences?.find((r) => r.kind === kind && r.controller);
      if (owner) return `${obj.metadata!.namespace}/${owner.name}`;
      // What an instance cannot own (cluster scope, other namespaces) names it in labels.
      const labels = obj.metadata?.labels ?? {};
      const namespace = labels[INSTANCE_NAMESPACE_LABEL];
      const name = labels['app.kubernetes.io/instance'];
      return kind === NIXERY_INSTANCE.kind && namespace && name ? `${namespace}/${name}` : undefined;
    };
    for (const verb of ['add', 'update', 'delete'] as const) {
      instances.on(verb, (instance) => {
        enqueueInstance(instance);
        // An instance that becomes Ready (or goes) concerns every image built into it.
        for (const image of images.list(instance.metadata.namespace)) {
          if (image.spec.instanceRef.name === instance.metadata.name) enqueueImage(image);
        }
      });
      for (const kind of Object.values(owned)) {
        kind.on(verb, (obj) => {
          const owner = ownerKey(obj, NIXERY_INSTANCE.kind);
          if (owner) controller.queue.add(owner);
        });
      }
      images.on(verb, (image) => {
        enqueueImage(image);
        // The instance's policy grants each of its NixImages' builds a push right.
        controller.queue.add(`${image.metadata.namespace}/${image.spec.instanceRef.name}`);
      });
      jobs.on(verb, (job) => {
        const owner = ownerKey(job, NIX_IMAGE.kind);
        if (owner) imageController.queue.add(owner);
      });
    }

    await Promise.all(this.watched.map((w) => w.start()));
    this.synced = true;
    log.info('caches synced; reconciling', { kinds: this.watched.length, namespaces: this.options.namespaces ?? 'all' });
    // Level-triggered safety net: look at every object now and then even without events.
    this.resyncTimer = setInterval(() => {
      for (const instance of instances.list()) enqueueInstance(instance);
      for (const image of images.list()) enqueueImage(image);
    }, this.options.resyncSeconds * 1000);
    this.resyncTimer.unref();
    for (const c of this.controllers) void c.run();
  }

  private watch<T extends KubernetesObject>(ref: KindRef, labelSelector?: string, scope: { clusterScoped?: boolean; extraNamespaces?: string[] } = {}): WatchedKind<T> {
    const namespaces = this.options.namespaces && watchedNamespaces(this.options.namespaces, scope.extraNamespaces ?? []);
    const kind = new WatchedKind<T>(this.options.kc, ref, {
      ...(namespaces && !scope.clusterScoped ? { namespaces } : {}),
      ...(labelSelector ? { labelSelector } : {}),
      onError: (informer, error) => {
        this.options.log.warn('watch failed; restarting', { kind: ref.kind, error: (error as Error)?.message ?? String(error) });
        // client-node's informer stops on error; start again after a pause, as client-go does.
        setTimeout(() => {
          if (!this.abort.signal.aborted) void informer.start();
        }, 1000).unref();
      },
    });
    this.watched.push(kind as unknown as WatchedKind<KubernetesObject>);
    return kind;
  }

  private async startHealthServer(): Promise<void> {
    this.server = http.createServer(async (req, res) => {
      if (req.url === '/healthz') return void res.writeHead(200).end('ok\n');
      if (req.url === '/readyz') {
        // A standby is ready too: it is healthy and waiting for the lease.
        const ready = this.synced || (this.elector !== undefined && !this.elector.isLeader);
        return void res.writeHead(ready ? 200 : 503).end(ready ? 'ok\n' : 'caches not synced\n');
      }
      if (req.url === '/metrics') {
        res.writeHead(200, { 'Content-Type': this.metrics.registry.contentType });
        return void res.end(await this.metrics.registry.metrics());
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => this.server!.listen(this.options.healthPort, this.options.healthHost ?? '0.0.0.0', resolve));
  }
}

/** `namespaces` and the `extra` ones it lacks, each once. */
export function watchedNamespaces(namespaces: readonly string[], extra: readonly string[]): string[] {
  return [...new Set([...namespaces, ...extra])];
}
