// What every controller of the agent shares: the API, the caches, the event recorder.
import type { V1DaemonSet, V1Deployment, V1Endpoints, V1Job, V1PersistentVolumeClaim, V1Pod, V1ReplicaSet, V1Service } from '@kubernetes/client-node';
import type { EventRecorder } from './events.ts';
import { isNotFound, type Cache, type Kube } from './kube.ts';
import { comparable } from './owners.ts';

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

  /**
   * Writes `status` with `patch` unless it equals `current` or what was last written for `uid`; an
   * object gone meanwhile is no error. True when it wrote (the object may have gone): a transition.
   */
  async write(uid: string, status: unknown, current: unknown, patch: () => Promise<unknown>): Promise<boolean> {
    const desired = comparable(status);
    if (desired === comparable(current ?? {}) || this.#written.get(uid) === desired) return false;
    this.#written.set(uid, desired);
    try {
      await patch();
    } catch (error) {
      this.#written.delete(uid);
      if (!isNotFound(error)) throw error;
    }
    return true;
  }
  forget(uid: string): void {
    this.#written.delete(uid);
  }
}
