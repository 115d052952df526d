// Applies desired objects with server-side apply under one field manager, and only when the
// cluster lacks something we set: a resync of an unchanged object makes no request at all.
// Only over objects that are the owner's already: a forced apply would otherwise take over an
// unrelated object that merely has the same name (a user's Deployment `web` for an instance `web`).
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../api/types.ts';
import { statusOf } from './http-status.ts';
import { IDENTITY_LABELS } from './labels.ts';
import { isSubset } from './subset.ts';

export type ApplyOutcome = 'unchanged' | 'applied';

/** Where `current` comes from: a label-filtered informer cache, or a read from the API server just now. */
export type CurrentSource = 'cache' | 'server';

/** An object of the desired name exists and is not the owner's: it was left untouched. */
export class OwnershipConflictError extends Error {
  readonly kind: string;
  readonly objectName: string;
  readonly namespace: string | undefined;
  readonly why: string;

  constructor(kind: string, name: string, namespace: string | undefined, why: string) {
    super(`${kind} ${namespace ? `${namespace}/` : ''}${name} exists and is not managed by this owner: ${why}`);
    this.name = 'OwnershipConflictError';
    this.kind = kind;
    this.objectName = name;
    this.namespace = namespace;
    this.why = why;
  }
}

/**
 * Why `existing` is not the object `desired` describes, or undefined when it is. A desired object
 * with a controller reference is ours only if the existing one names the same controller UID (so
 * an instance deleted and made again under the same name does not inherit a leftover either); one
 * that cannot have an owner reference (cluster scope, another namespace) carries its owner in
 * labels, and the existing one must carry the same values.
 */
export function ownershipProblem(desired: KubernetesObject, existing: KubernetesObject): string | undefined {
  const controller = desired.metadata?.ownerReferences?.find((r) => r.controller);
  if (controller) {
    const theirs = existing.metadata?.ownerReferences?.find((r) => r.controller);
    if (theirs?.uid === controller.uid) return undefined;
    return theirs ? `its controller is ${theirs.kind} ${theirs.name} (uid ${theirs.uid})` : `it has no controller reference to ${controller.kind} ${controller.name}`;
  }
  const wanted = Object.entries(desired.metadata?.labels ?? {}).filter(([key]) => IDENTITY_LABELS.includes(key));
  // Nothing to tell ours from theirs: refusing is the only safe answer.
  if (wanted.length === 0) return 'the desired object names no owner (neither a controller reference nor owner labels)';
  const labels = existing.metadata?.labels ?? {};
  const differing = wanted.filter(([key, value]) => labels[key] !== value).map(([key, value]) => `${key}=${value}`);
  return differing.length ? `it lacks the labels ${differing.join(', ')}` : undefined;
}

export function checkOwnership(desired: KubernetesObject, existing: KubernetesObject | undefined): void {
  const problem = existing && ownershipProblem(desired, existing);
  if (problem) throw new OwnershipConflictError(desired.kind ?? 'unknown', desired.metadata?.name ?? '', desired.metadata?.namespace, problem);
}

/** The two calls the applier makes; tests pass a fake. */
export type ObjectApi = Pick<KubernetesObjectApi, 'read' | 'patch'>;

export class Applier {
  private readonly api: ObjectApi;
  private readonly onWrite: (kind: string) => void;

  constructor(kcOrApi: KubeConfig | ObjectApi, onWrite: (kind: string) => void = () => {}) {
    this.api = kcOrApi instanceof KubeConfig ? KubernetesObjectApi.makeApiClient(kcOrApi) : kcOrApi;
    this.onWrite = onWrite;
  }

  /**
   * `current` is what the informer cache holds (undefined when absent), or with `source`
   * 'server' what the API server answered a moment ago (undefined: there is none). Throws
   * OwnershipConflictError, having written nothing, when the object there is not the owner's.
   */
  async apply<T extends KubernetesObject>(desired: T, current: KubernetesObject | undefined, source: CurrentSource = 'cache'): Promise<ApplyOutcome> {
    // The caches hold only labelled objects: absent there may still exist. Ask before an apply
    // that would create; in the steady state everything is cached, so a resync asks nothing.
    const existing = current ?? (source === 'cache' ? await this.read(desired) : undefined);
    checkOwnership(desired, existing);
    if (existing && isSubset(stripForCompare(desired), existing)) return 'unchanged';
    this.onWrite(desired.kind ?? 'unknown');
    // force: the object is the owner's (checked above); a user's manual change to a field we
    // manage is put back.
    await this.api.patch(desired, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    return 'applied';
  }

  private async read(desired: KubernetesObject): Promise<KubernetesObject | undefined> {
    const { apiVersion, kind, metadata } = desired;
    try {
      return await this.api.read({ apiVersion: apiVersion!, kind: kind!, metadata: { name: metadata!.name!, ...(metadata!.namespace ? { namespace: metadata!.namespace } : {}) } });
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }
}

/** apiVersion/kind/name are identity, not content; compare the rest. */
function stripForCompare<T extends KubernetesObject>(desired: T): Partial<T> {
  const { apiVersion: _a, kind: _k, ...rest } = desired;
  return rest as Partial<T>;
}
