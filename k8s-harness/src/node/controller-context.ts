// What every controller of the agent shares: the API, the caches, the event recorder.
import type { V1DaemonSet, V1Deployment, V1Endpoints, V1Job, V1PersistentVolumeClaim, V1Pod, V1ReplicaSet, V1Service } from '@kubernetes/client-node';
import type { EventRecorder } from './events.ts';
import type { Cache, Kube } from './kube.ts';

export interface Caches {
  pods: Cache<V1Pod>;
  replicaSets: Cache<V1ReplicaSet>;
  deployments: Cache<V1Deployment>;
  daemonSets: Cache<V1DaemonSet>;
  jobs: Cache<V1Job>;
  services: Cache<V1Service>;
  endpoints: Cache<V1Endpoints>;
  claims: Cache<V1PersistentVolumeClaim>;
}

export interface ControllerContext {
  kube: Kube;
  caches: Caches;
  events: EventRecorder;
  nodeName: string;
  log: (line: object) => void;
}

/** Writes a status only when it differs from what the API holds and from what was last written. */
export class StatusMemo {
  readonly #written = new Map<string, string>();

  shouldWrite(uid: string, desired: string, current: string): boolean {
    if (desired === current) return false;
    return this.#written.get(uid) !== desired;
  }
  wrote(uid: string, desired: string): void {
    this.#written.set(uid, desired);
  }
  failed(uid: string): void {
    this.#written.delete(uid);
  }
  forget(uid: string): void {
    this.#written.delete(uid);
  }
}
