// The DaemonSet controller's decisions for this one-node cluster: one daemon pod on the node,
// replaced when the template changes (RollingUpdate: the old pod is deleted, the new one created
// once it is gone — maxUnavailable 1, maxSurge 0 on a single node) or only when deleted
// (OnDelete), and the status upstream's updateDaemonSetStatus computes.
import type { V1DaemonSet, V1DaemonSetStatus, V1Pod, V1PodTemplateSpec, V1Toleration } from '@kubernetes/client-node';
import { availableSince } from './replicaset.ts';
import { canonicalJson, fnv32a, isPodReady, isTerminalPod, safeEncode, toMillis } from './owners.ts';

export const REVISION_HASH_LABEL = 'controller-revision-hash';
export const TEMPLATE_GENERATION_LABEL = 'pod-template-generation';

/**
 * The template's revision label. Like upstream's ControllerRevision hash it is FNV-32a (plus the
 * collision count), safe-encoded; it hashes canonical JSON, so the values differ from a real cluster's.
 */
export function daemonSetHash(ds: V1DaemonSet): string {
  const collision = ds.status?.collisionCount;
  return safeEncode(String(fnv32a(canonicalJson(ds.spec?.template ?? {}) + (collision !== undefined ? String(collision) : ''))));
}

/** The labels a daemon pod gets besides the template's. */
export function daemonPodLabels(ds: V1DaemonSet): Record<string, string> {
  return { [REVISION_HASH_LABEL]: daemonSetHash(ds), [TEMPLATE_GENERATION_LABEL]: String(ds.metadata?.generation ?? 1) };
}

/**
 * The template as upstream's controller stamps it for a node (util.AddOrUpdateDaemonPodTolerations
 * and ReplaceDaemonSetPodNodeNameNodeAffinity): the daemon tolerations added, and a required node
 * affinity to exactly this node.
 */
export function daemonPodTemplate(ds: V1DaemonSet, nodeName: string): V1PodTemplateSpec {
  const template = structuredClone(ds.spec?.template ?? {}) as V1PodTemplateSpec;
  const spec = (template.spec ??= { containers: [] });
  const tolerations: V1Toleration[] = [...(spec.tolerations ?? [])];
  const add = (key: string, effect: string) => {
    if (!tolerations.some((t) => t.key === key && t.effect === effect && (t.operator ?? 'Equal') === 'Exists')) tolerations.push({ key, operator: 'Exists', effect });
  };
  add('node.kubernetes.io/not-ready', 'NoExecute');
  add('node.kubernetes.io/unreachable', 'NoExecute');
  add('node.kubernetes.io/disk-pressure', 'NoSchedule');
  add('node.kubernetes.io/memory-pressure', 'NoSchedule');
  add('node.kubernetes.io/pid-pressure', 'NoSchedule');
  add('node.kubernetes.io/unschedulable', 'NoSchedule');
  if (spec.hostNetwork) add('node.kubernetes.io/network-unavailable', 'NoSchedule');
  spec.tolerations = tolerations;
  spec.affinity = {
    ...(spec.affinity ?? {}),
    nodeAffinity: {
      ...(spec.affinity?.nodeAffinity ?? {}),
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [nodeName] }] }],
      },
    },
  };
  return template;
}

export interface DaemonSetPlan {
  /** whether to create the node's daemon pod */
  create: boolean;
  /** names of pods to delete */
  delete: string[];
  status: V1DaemonSetStatus;
  /** reconcile again then (a ready pod becomes available after minReadySeconds) */
  requeueAfterMs?: number;
}

function isUpdated(pod: V1Pod, hash: string, generation: string): boolean {
  const labels = pod.metadata?.labels ?? {};
  // As upstream's IsPodUpdated: the revision hash, or (pods of old controllers) the template generation.
  return labels[REVISION_HASH_LABEL] === hash || (labels[REVISION_HASH_LABEL] === undefined && labels[TEMPLATE_GENERATION_LABEL] === generation);
}

const byAge = (a: V1Pod, b: V1Pod) => (toMillis(a.metadata?.creationTimestamp) ?? 0) - (toMillis(b.metadata?.creationTimestamp) ?? 0);

/**
 * `owned`: the pods whose controller reference is this DaemonSet (all on this node). As upstream's
 * podsShouldBeOnNode and rollingUpdate, for the one node that should run a daemon pod:
 * - none there (a pod being deleted still counts until it is gone): create one;
 * - failed pods are deleted (and replaced on a later sync); of several running ones, all but the oldest;
 * - RollingUpdate: an old pod is deleted when unavailable, or when available and no pod is unavailable
 *   (maxUnavailable, default 1 — on one node: always); its replacement follows once it is gone.
 */
export function planDaemonSet(ds: V1DaemonSet, owned: readonly V1Pod[], now: number): DaemonSetPlan {
  const hash = daemonSetHash(ds);
  const generation = String(ds.metadata?.generation ?? 1);
  const minReady = ds.spec?.minReadySeconds ?? 0;
  // upstream's getNodesToDaemonPods(…, false): finished pods that are being deleted are gone for it
  const present = owned.filter((p) => !(isTerminalPod(p) && p.metadata?.deletionTimestamp));
  const live = present.filter((p) => !p.metadata?.deletionTimestamp);
  const failed = live.filter((p) => p.status?.phase === 'Failed');
  const running = live.filter((p) => p.status?.phase !== 'Failed').sort(byAge);
  const toDelete = [...failed, ...running.slice(1)].map((p) => p.metadata?.name ?? '');
  const current = running[0];

  const strategy = ds.spec?.updateStrategy?.type ?? 'RollingUpdate';
  if (current && strategy === 'RollingUpdate' && !isUpdated(current, hash, generation)) {
    // maxUnavailable ≥ 1 (upstream refuses 0 without maxSurge): with one node, nothing else is unavailable.
    toDelete.push(current.metadata?.name ?? '');
  }

  // The status looks at the node's oldest daemon pod, a terminating one included, as upstream's.
  const oldest = [...present].sort(byAge)[0];
  const availableAt = oldest ? availableSince(oldest, minReady) : undefined;
  const available = availableAt !== undefined && availableAt <= now;
  const updated = oldest && isUpdated(oldest, hash, generation) ? 1 : 0;
  const status: V1DaemonSetStatus = {
    currentNumberScheduled: present.length > 0 ? 1 : 0,
    desiredNumberScheduled: 1,
    numberMisscheduled: 0,
    numberReady: oldest && isPodReady(oldest) ? 1 : 0,
    numberAvailable: available ? 1 : 0,
    updatedNumberScheduled: updated,
    observedGeneration: ds.metadata?.generation ?? 1,
    // upstream omits it when 0; null removes it in the merge patch
    numberUnavailable: available ? (null as unknown as number) : 1,
  };
  if (ds.status?.collisionCount !== undefined) status.collisionCount = ds.status.collisionCount;
  const plan: DaemonSetPlan = { create: present.length === 0, delete: toDelete, status };
  if (availableAt !== undefined && availableAt > now) plan.requeueAfterMs = availableAt - now;
  return plan;
}
