// Leader election through a coordination.k8s.io Lease, so two replicas never reconcile at once.
// The holder renews well inside the lease duration; others take over only after it expired.
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '@nixery/registry/operator-api';
import { FIELD_MANAGER } from '../api/types.ts';
import { statusOf } from '../kube/http-status.ts';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewIntervalMs?: number;
  log: Logger;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly options: Required<LeaderElectionOptions>;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(kc: KubeConfig, options: LeaderElectionOptions) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.options = { leaseDurationSeconds: 15, renewIntervalMs: 2000, ...options };
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Resolves once this process leads; calls onLost if it later loses the lease. */
  async acquire(signal: AbortSignal, onLost: () => void): Promise<void> {
    const { log, renewIntervalMs } = this.options;
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew()) {
        this.leading = true;
        log.info('became leader', { lease: this.options.name, identity: this.options.identity });
        this.renewLoop(onLost);
        return;
      }
      await new Promise((r) => setTimeout(r, renewIntervalMs));
    }
  }

  private renewLoop(onLost: () => void): void {
    this.timer = setTimeout(async () => {
      if (this.stopped) return;
      const renewed = await this.tryAcquireOrRenew().catch(() => false);
      if (!renewed) {
        this.leading = false;
        this.options.log.error('lost the leader lease', { lease: this.options.name });
        onLost();
        return;
      }
      this.renewLoop(onLost);
    }, this.options.renewIntervalMs);
  }

  /** Gives the lease up on shutdown so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    const lease = await this.read();
    if (lease?.spec?.holderIdentity !== this.options.identity) return;
    lease.spec = { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1 } as never;
    await this.api
      .replaceNamespacedLease({ name: this.options.name, namespace: this.options.namespace, body: lease, fieldManager: FIELD_MANAGER })
      .catch(() => {});
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: this.options.name, namespace: this.options.namespace });
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, leaseDurationSeconds } = this.options;
    const now = new Date();
    const lease = await this.read();
    if (!lease) {
      try {
        await this.api.createNamespacedLease({
          namespace,
          fieldManager: FIELD_MANAGER,
          body: {
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
        return true;
      } catch (error) {
        if (statusOf(error) === 409) return false;
        throw error;
      }
    }
    const spec = lease.spec ?? {};
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000 < now.getTime();
    const mine = spec.holderIdentity === identity;
    if (!mine && spec.holderIdentity && !expired) return false;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: now,
      ...(mine ? {} : { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
    };
    try {
      // The resourceVersion in `lease` makes this a compare-and-swap: two candidates cannot both win.
      await this.api.replaceNamespacedLease({ name, namespace, body: lease, fieldManager: FIELD_MANAGER });
      return true;
    } catch (error) {
      if (statusOf(error) === 409) return false;
      throw error;
    }
  }
}
