// What a pod's worker and its container runners share: their dependencies on the rest of the
// node, the back-off and grace bounds, and time as both see it.
import type { V1Service } from '@kubernetes/client-node';
import type { EventRecorder } from './events.ts';
import type { ServiceRecord } from './hosts.ts';
import type { Kube } from './kube.ts';
import type { HostPathRoots } from './node-root.ts';
import type { HostMountPoints } from './mountpoints.ts';
import type { Puller } from './puller.ts';
import type { ImageMapping } from './types.ts';
import type { VolumeSources } from './volumes.ts';

export interface PodWorkerDeps {
  kube: Kube;
  nodeName: string;
  hostIP: string;
  dataDir: string;
  /** where hostPath volumes are on this machine (node-root.ts) */
  hostPaths: HostPathRoots;
  imageMap: readonly ImageMapping[];
  events: EventRecorder;
  puller: Puller;
  mountPoints: HostMountPoints;
  volumeSources: VolumeSources;
  services: () => readonly V1Service[];
  /** where a Service is reached on this node (services.ts) */
  serviceAddress: (service: V1Service) => string | undefined;
  serviceRecords: () => readonly ServiceRecord[];
  allocateIP: (uid: string) => string;
  /** how often Secret, ConfigMap, downward API and projected volumes are brought up to date */
  volumeSyncPeriodMs: number;
  log: (line: object) => void;
}

/**
 * A kubelet syncs volumes about every minute (its sync frequency plus the ConfigMap/Secret
 * cache's delay); this node every 2 s by default, so suites see an update quickly.
 */
export const DEFAULT_VOLUME_SYNC_PERIOD_MS = 2000;

/** Kubernetes backs off 10 s … 5 min between restarts; this node 1 s … 20 s, so suites stay short. */
export const RESTART_BACKOFF_BASE_MS = 1000;
export const RESTART_BACKOFF_CAP_MS = 20_000;
/** terminationGracePeriodSeconds is honoured up to this long. */
export const GRACE_CAP_MS = 10_000;

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export function at(): Date {
  return new Date(Math.floor(Date.now() / 1000) * 1000);
}
