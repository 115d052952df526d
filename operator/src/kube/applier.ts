// Applies desired objects with server-side apply under one field manager, and only when the
// cluster lacks something we set: a resync of an unchanged object makes no request at all.
import { KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../api/types.ts';
import { isSubset } from './subset.ts';

export type ApplyOutcome = 'unchanged' | 'applied';

export class Applier {
  private readonly api: KubernetesObjectApi;
  private readonly onWrite: (kind: string) => void;

  constructor(kc: KubeConfig, onWrite: (kind: string) => void = () => {}) {
    this.api = KubernetesObjectApi.makeApiClient(kc);
    this.onWrite = onWrite;
  }

  /** `current` is what the informer cache holds (undefined when absent). */
  async apply<T extends KubernetesObject>(desired: T, current: KubernetesObject | undefined): Promise<ApplyOutcome> {
    if (current && isSubset(stripForCompare(desired), current)) return 'unchanged';
    this.onWrite(desired.kind ?? 'unknown');
    // force: the operator owns these objects; a user's manual change to a field we manage is put back.
    await this.api.patch(desired, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    return 'applied';
  }
}

/** apiVersion/kind/name are identity, not content; compare the rest. */
function stripForCompare<T extends KubernetesObject>(desired: T): Partial<T> {
  const { apiVersion: _a, kind: _k, ...rest } = desired;
  return rest as Partial<T>;
}
