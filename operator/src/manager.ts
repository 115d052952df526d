// Wires informers, controllers, leader election and the health/metrics server together.
import http from 'node:http';
import os from 'node:os';
import {
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
  type V1Job,
  type V1Service,
} from '@kubernetes/client-node';
import type { Logger } from '@nixery/registry/log/logger.js';
import { NIX_IMAGE, NIXERY_INSTANCE, type NixeryInstance, type NixImage } from './api/types.ts';
import { ImageReconciler } from './image/reconciler.ts';
import { Controller } from './controller/controller.ts';
import { LeaderElector } from './controller/leader-election.ts';
import { Applier } from './kube/applier.ts';
import { MANAGED_BY_LABEL } from './kube/labels.ts';
import { InstanceReconciler } from './instance/reconciler.ts';
import { createOperatorMetrics, type OperatorMetrics } from './metrics.ts';
import { FIELD_MANAGER } from './api/types.ts';

export interface ManagerOptions {
  kc: KubeConfig;
  log: Logger;
  healthPort: number;
  healthHost?: string;
  leaderElection: { enabled: boolean; namespace: string; identity?: string };
  resyncSeconds: number;
  workers: number;
}

type AnyInformer = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export class Manager {
  private readonly options: ManagerOptions;
  readonly metrics: OperatorMetrics = createOperatorMetrics();
  private readonly informers: AnyInformer[] = [];
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
    for (const informer of this.informers) await informer.stop();
    await this.elector?.release();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async startControllers(): Promise<void> {
    const { kc, log } = this.options;
    const onWrite = (kind: string) => this.metrics.writes.inc({ kind });
    const apps = kc.makeApiClient(AppsV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const selector = `${MANAGED_BY_LABEL}=${FIELD_MANAGER}`;

    const instances = this.informer<NixeryInstance>(
      `/apis/${NIXERY_INSTANCE.group}/${NIXERY_INSTANCE.version}/${NIXERY_INSTANCE.plural}`,
      () => custom.listClusterCustomObject(NIXERY_INSTANCE) as Promise<KubernetesListObject<NixeryInstance>>,
    );
    const owned: Record<string, AnyInformer> = {
      ServiceAccount: this.informer('/api/v1/serviceaccounts', () => core.listServiceAccountForAllNamespaces({ labelSelector: selector }), selector),
      PersistentVolumeClaim: this.informer(
        '/api/v1/persistentvolumeclaims',
        () => core.listPersistentVolumeClaimForAllNamespaces({ labelSelector: selector }),
        selector,
      ),
      Service: this.informer('/api/v1/services', () => core.listServiceForAllNamespaces({ labelSelector: selector }), selector),
      Deployment: this.informer('/apis/apps/v1/deployments', () => apps.listDeploymentForAllNamespaces({ labelSelector: selector }), selector),
      DaemonSet: this.informer('/apis/apps/v1/daemonsets', () => apps.listDaemonSetForAllNamespaces({ labelSelector: selector }), selector),
    };

    const reconciler = new InstanceReconciler({ kc, applier: new Applier(kc, onWrite), caches: { instances, owned }, log, onWrite });
    const controller = new Controller('nixeryinstance', reconciler.reconcile, { log, metrics: this.metrics, workers: this.options.workers });
    this.controllers.push(controller);

    const enqueueInstance = (obj: KubernetesObject) => controller.queue.add(`${obj.metadata!.namespace}/${obj.metadata!.name}`);
    for (const verb of ['add', 'update', 'delete'] as const) instances.on(verb, enqueueInstance as never);
    const enqueueOwner = (obj: KubernetesObject) => {
      const owner = obj.metadata?.ownerReferences?.find((r) => r.kind === NIXERY_INSTANCE.kind && r.controller);
      if (owner) controller.queue.add(`${obj.metadata!.namespace}/${owner.name}`);
    };
    for (const informer of Object.values(owned)) for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, enqueueOwner);

    const batch = kc.makeApiClient(BatchV1Api);
    const images = this.informer<NixImage>(
      `/apis/${NIX_IMAGE.group}/${NIX_IMAGE.version}/${NIX_IMAGE.plural}`,
      () => custom.listClusterCustomObject(NIX_IMAGE) as Promise<KubernetesListObject<NixImage>>,
    );
    const jobs = this.informer<V1Job>('/apis/batch/v1/jobs', () => batch.listJobForAllNamespaces({ labelSelector: selector }), selector);
    const imageReconciler = new ImageReconciler({
      kc,
      caches: { images, instances, jobs, services: owned.Service as unknown as ObjectCache<V1Service> },
      log,
      onWrite,
    });
    const imageController = new Controller('niximage', imageReconciler.reconcile, { log, metrics: this.metrics, workers: this.options.workers });
    this.controllers.push(imageController);
    const enqueueImage = (obj: KubernetesObject) => imageController.queue.add(`${obj.metadata!.namespace}/${obj.metadata!.name}`);
    for (const verb of ['add', 'update', 'delete'] as const) {
      images.on(verb, enqueueImage as never);
      jobs.on(verb, (job: V1Job) => {
        const owner = job.metadata?.ownerReferences?.find((r) => r.kind === NIX_IMAGE.kind && r.controller);
        if (owner) imageController.queue.add(`${job.metadata!.namespace}/${owner.name}`);
      });
      // An instance that becomes Ready (or goes) concerns every image built into it.
      instances.on(verb, (instance: NixeryInstance) => {
        for (const image of images.list(instance.metadata.namespace)) {
          if (image.spec.instanceRef.name === instance.metadata.name) enqueueImage(image);
        }
      });
    }

    await Promise.all(this.informers.map((i) => i.start()));
    this.synced = true;
    log.info('caches synced; reconciling', { informers: this.informers.length });
    // Level-triggered safety net: look at every instance now and then even without events.
    this.resyncTimer = setInterval(() => {
      for (const instance of instances.list()) enqueueInstance(instance);
      for (const image of images.list()) enqueueImage(image);
    }, this.options.resyncSeconds * 1000);
    this.resyncTimer.unref();
    for (const c of this.controllers) void c.run();
  }

  private informer<T extends KubernetesObject>(
    path: string,
    list: () => Promise<KubernetesListObject<T>>,
    labelSelector?: string,
  ): Informer<T> & ObjectCache<T> {
    const informer = makeInformer<T>(this.options.kc, path, list, labelSelector);
    informer.on('error', (error: unknown) => {
      this.options.log.warn('watch failed; restarting', { path, error: (error as Error)?.message ?? String(error) });
      // client-node's informer stops on error; start again after a pause, as client-go does.
      setTimeout(() => {
        if (!this.abort.signal.aborted) void informer.start();
      }, 1000).unref();
    });
    this.informers.push(informer as unknown as AnyInformer);
    return informer;
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
