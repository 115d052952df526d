// The PodSecurity admission plugin's decisions (k8s.io/pod-security-admission/admission and
// api/helpers.go): a namespace's labels become a policy; pods are checked against `enforce`
// (refused) and `warn` (warnings); workloads with a pod template only get warnings; a namespace
// whose labels are invalid is refused, and one whose enforce level becomes stricter gets warnings
// naming its existing pods that would violate it. No exemptions are configured and the defaults are
// privileged:latest for all modes, as kube-apiserver without an admission configuration.
// Audit labels are validated and parsed but nothing is annotated (the audit log has no annotations).
import { forbidden, invalid, type FieldError } from './errors.ts';
import { obj, type JsonObject } from './json.ts';
import { evaluatePod, forbiddenDetail, forbiddenReason, type CheckResult, type Level } from './pod-security.ts';

export const ENFORCE_LABEL = 'pod-security.kubernetes.io/enforce';
export const ENFORCE_VERSION_LABEL = 'pod-security.kubernetes.io/enforce-version';
export const AUDIT_LABEL = 'pod-security.kubernetes.io/audit';
export const AUDIT_VERSION_LABEL = 'pod-security.kubernetes.io/audit-version';
export const WARN_LABEL = 'pod-security.kubernetes.io/warn';
export const WARN_VERSION_LABEL = 'pod-security.kubernetes.io/warn-version';

/**
 * A level and the policy version named by the labels (`latest` or `v1.N`). Every version is
 * evaluated with this server's (v1.32) checks, as `latest`; the version only shows in messages.
 */
export interface LevelVersion {
  level: Level;
  version: string;
}

export interface Policy {
  enforce: LevelVersion;
  audit: LevelVersion;
  warn: LevelVersion;
}

const LATEST = 'latest';
const VERSION = /^v1\.([0-9]|[1-9][0-9]*)$/;

export function levelVersionString(lv: LevelVersion): string {
  return `${lv.level}:${lv.version}`;
}

function parseLevel(value: string): { level: Level; error?: string } {
  if (value === 'privileged' || value === 'baseline' || value === 'restricted') return { level: value };
  return { level: 'restricted', error: 'must be one of privileged, baseline, restricted' };
}

function parseVersion(value: string): { version: string; error?: string } {
  if (value === LATEST) return { version: LATEST };
  const m = VERSION.exec(value);
  // Upstream's Atoi would fail on a number too big for an int; such a label is not a real case.
  if (!m) return { version: LATEST, error: 'must be "latest" or "v1.x"' };
  return { version: `v1.${Number(m[1])}` };
}

function labelError(label: string, value: string, detail: string): FieldError {
  return { type: 'FieldValueInvalid', field: `metadata.labels[${label}]`, value, detail };
}

/**
 * api.PolicyToEvaluate: a valid policy always (an invalid enforce level is restricted, an invalid
 * audit or warn level privileged, an invalid version latest) and the label errors.
 */
export function policyToEvaluate(labels: Record<string, unknown> | undefined): { policy: Policy; errors: FieldError[] } {
  const privileged = (): LevelVersion => ({ level: 'privileged', version: LATEST });
  const policy: Policy = { enforce: privileged(), audit: privileged(), warn: privileged() };
  const errors: FieldError[] = [];
  const l = Object.fromEntries(Object.entries(labels ?? {}).map(([k, v]) => [k, String(v)]));
  let hasEnforceLevel = false;
  let hasWarnLevel = false;
  let hasWarnVersion = false;
  const level = (label: string, failOpen: boolean): Level | undefined => {
    const value = l[label];
    if (value === undefined) return undefined;
    const parsed = parseLevel(value);
    if (parsed.error) errors.push(labelError(label, value, parsed.error));
    return parsed.error && failOpen ? 'privileged' : parsed.level;
  };
  const version = (label: string): string | undefined => {
    const value = l[label];
    if (value === undefined) return undefined;
    const parsed = parseVersion(value);
    if (parsed.error) errors.push(labelError(label, value, parsed.error));
    return parsed.version;
  };
  const enforceLevel = level(ENFORCE_LABEL, false);
  if (enforceLevel !== undefined) {
    policy.enforce.level = enforceLevel;
    hasEnforceLevel = parseLevel(l[ENFORCE_LABEL] ?? '').error === undefined;
  }
  const enforceVersion = version(ENFORCE_VERSION_LABEL);
  if (enforceVersion !== undefined) policy.enforce.version = enforceVersion;
  const auditLevel = level(AUDIT_LABEL, true);
  if (auditLevel !== undefined) policy.audit.level = auditLevel;
  const auditVersion = version(AUDIT_VERSION_LABEL);
  if (auditVersion !== undefined) policy.audit.version = auditVersion;
  const warnLevel = level(WARN_LABEL, true);
  if (warnLevel !== undefined) {
    hasWarnLevel = true;
    policy.warn.level = warnLevel;
  }
  const warnVersion = version(WARN_VERSION_LABEL);
  if (warnVersion !== undefined) {
    hasWarnVersion = true;
    policy.warn.version = warnVersion;
  }
  // Warn defaults to the enforce level when that is explicitly set and stricter.
  if (!hasWarnLevel && hasEnforceLevel && compareLevels(policy.enforce.level, policy.warn.level) > 0) {
    policy.warn.level = policy.enforce.level;
    if (!hasWarnVersion) policy.warn.version = policy.enforce.version;
  }
  return { policy, errors };
}

const RANK: Record<Level, number> = { privileged: 0, baseline: 1, restricted: 2 };
function compareLevels(a: Level, b: Level): number {
  return Math.sign(RANK[a] - RANK[b]);
}

const sameLevelVersion = (a: LevelVersion, b: LevelVersion): boolean => a.level === b.level && a.version === b.version;
const fullyPrivileged = (p: Policy): boolean => p.enforce.level === 'privileged' && p.audit.level === 'privileged' && p.warn.level === 'privileged';

function wouldViolate(lv: LevelVersion, results: readonly CheckResult[]): string {
  return `would violate PodSecurity ${JSON.stringify(levelVersionString(lv))}: ${forbiddenDetail(results)}`;
}

/** isSignificantPodUpdate: only a changed image or a changed number of containers is checked again. */
export function isSignificantPodUpdate(pod: JsonObject, old: JsonObject): boolean {
  const list = (o: JsonObject, field: string): JsonObject[] => {
    const v = obj(o.spec)[field];
    return Array.isArray(v) ? v.map(obj) : [];
  };
  for (const field of ['containers', 'initContainers']) {
    const now = list(pod, field);
    const before = list(old, field);
    if (now.length !== before.length) return true;
    if (now.some((c, i) => c.image !== before[i]?.image)) return true;
  }
  const beforeEphemeral = list(old, 'ephemeralContainers');
  for (const c of list(pod, 'ephemeralContainers')) {
    const previous = beforeEphemeral.find((o) => o.name === c.name);
    if (!previous || previous.image !== c.image) return true;
  }
  return false;
}

export interface PodDecision {
  /** the Forbidden message's reason (`violates PodSecurity "restricted:latest": …`) when refused */
  refused?: string;
  warnings: string[];
}

/** ValidatePod + EvaluatePod with enforce: the pod and, on update, the stored pod. */
export function admitPod(namespaceLabels: Record<string, unknown> | undefined, pod: JsonObject, old: JsonObject | undefined): PodDecision {
  const { policy, errors } = policyToEvaluate(namespaceLabels);
  if (errors.length === 0 && fullyPrivileged(policy)) return { warnings: [] };
  if (old && !isSignificantPodUpdate(pod, old)) return { warnings: [] };
  const enforced = evaluatePod(policy.enforce.level, pod.metadata, pod.spec);
  if (enforced.length > 0) return { refused: `violates PodSecurity ${JSON.stringify(levelVersionString(policy.enforce))}: ${forbiddenDetail(enforced)}`, warnings: [] };
  const warned = sameLevelVersion(policy.warn, policy.enforce) ? enforced : evaluatePod(policy.warn.level, pod.metadata, pod.spec);
  return { warnings: warned.length > 0 ? [wouldViolate(policy.warn, warned)] : [] };
}

/** Kinds with a pod template that upstream's PodSpecExtractor knows, by `group/Kind`. */
const TEMPLATE_PATHS: Record<string, readonly string[]> = {
  '/ReplicationController': ['spec', 'template'],
  '/PodTemplate': ['template'],
  'apps/ReplicaSet': ['spec', 'template'],
  'apps/Deployment': ['spec', 'template'],
  'apps/StatefulSet': ['spec', 'template'],
  'apps/DaemonSet': ['spec', 'template'],
  'batch/Job': ['spec', 'template'],
  'batch/CronJob': ['spec', 'jobTemplate', 'spec', 'template'],
};

export function hasPodTemplate(group: string, kind: string): boolean {
  return TEMPLATE_PATHS[`${group}/${kind}`] !== undefined;
}

/** ValidatePodController: warnings only (workloads are never refused). */
export function admitPodController(namespaceLabels: Record<string, unknown> | undefined, group: string, kind: string, object: JsonObject): string[] {
  const path = TEMPLATE_PATHS[`${group}/${kind}`];
  if (!path) return [];
  const { policy, errors } = policyToEvaluate(namespaceLabels);
  if (errors.length === 0 && policy.warn.level === 'privileged' && policy.audit.level === 'privileged') return [];
  let template: unknown = object;
  for (const key of path) template = obj(template)[key];
  // Only a ReplicationController's or PodTemplate's template can be nil (the others are values in Go).
  if ((kind === 'ReplicationController' || kind === 'PodTemplate') && (template === undefined || template === null)) return [];
  const results = evaluatePod(policy.warn.level, obj(template).metadata, obj(template).spec);
  return results.length > 0 ? [wouldViolate(policy.warn, results)] : [];
}

export interface NamespaceDecision {
  invalid?: FieldError[];
  warnings: string[];
}

/** The pods of a namespace, for checking a new enforce level against them. */
export type PodLister = () => readonly JsonObject[];

/** ValidateNamespace: invalid labels refused; a stricter enforce level warns about existing pods. */
export function admitNamespace(namespace: JsonObject, old: JsonObject | undefined, pods: PodLister): NamespaceDecision {
  const { policy, errors } = policyToEvaluate(obj(obj(namespace.metadata).labels));
  if (!old) return errors.length > 0 ? { invalid: errors, warnings: [] } : { warnings: [] };
  const { policy: oldPolicy, errors: oldErrors } = policyToEvaluate(obj(obj(old.metadata).labels));
  if (errors.length > 0 && (oldErrors.length === 0 || JSON.stringify(errors) !== JSON.stringify(oldErrors))) return { invalid: errors, warnings: [] };
  if (sameLevelVersion(policy.enforce, oldPolicy.enforce)) return { warnings: [] };
  if (policy.enforce.level === 'privileged') return { warnings: [] };
  if (policy.enforce.version === oldPolicy.enforce.version && compareLevels(policy.enforce.level, oldPolicy.enforce.level) < 1) return { warnings: [] };
  return { warnings: evaluatePodsInNamespace(String(obj(namespace.metadata).name), policy.enforce, pods()) };
}

const MAX_PODS_TO_CHECK = 3000;

/** EvaluatePodsInNamespace: one warning per distinct set of failed checks, naming a pod and counting the others. */
export function evaluatePodsInNamespace(namespace: string, enforce: LevelVersion, pods: readonly JsonObject[]): string[] {
  // Pods of a controller already seen go last (they are likely the same), as prioritizePods.
  const seen = new Set<string>();
  const first: JsonObject[] = [];
  const duplicates: JsonObject[] = [];
  for (const pod of pods) {
    const refs = obj(pod.metadata).ownerReferences;
    const controller = (Array.isArray(refs) ? refs.map(obj) : []).find((r) => r.controller === true);
    if (!controller) first.push(pod);
    else if (seen.has(String(controller.uid))) duplicates.push(pod);
    else {
      seen.add(String(controller.uid));
      first.push(pod);
    }
  }
  const ordered = [...first, ...duplicates].slice(0, MAX_PODS_TO_CHECK);
  const byReason = new Map<string, { podName: string; count: number }>();
  for (const pod of ordered) {
    const results = evaluatePod(enforce.level, pod.metadata, pod.spec);
    if (results.length === 0) continue;
    const reason = forbiddenReason(results);
    const name = String(obj(pod.metadata).name);
    const entry = byReason.get(reason);
    if (!entry) byReason.set(reason, { podName: name, count: 1 });
    else {
      entry.count++;
      if (name < entry.podName) entry.podName = name;
    }
  }
  const warnings: string[] = [];
  if (ordered.length < pods.length) warnings.push(`new PodSecurity enforce level only checked against the first ${ordered.length} of ${pods.length} existing pods`);
  if (byReason.size > 0) warnings.push(`existing pods in namespace ${JSON.stringify(namespace)} violate the new PodSecurity enforce level ${JSON.stringify(levelVersionString(enforce))}`);
  const podWarnings = [...byReason].map(([reason, { podName, count }]) => {
    if (count === 1) return `${podName}: ${reason}`;
    if (count === 2) return `${podName} (and 1 other pod): ${reason}`;
    return `${podName} (and ${count - 1} other pods): ${reason}`;
  });
  podWarnings.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return [...warnings, ...podWarnings];
}

/** What the API server asks of the plugin: the namespace's labels and its pods. */
export interface PodSecurityLookup {
  namespaceLabels(namespace: string): Record<string, unknown> | undefined;
  pods(namespace: string): readonly JsonObject[];
}

/**
 * The plugin on a create (no `old`) or update of the main resource: throws the 403 or 422 a
 * kube-apiserver answers, else returns its warnings. Other kinds pass untouched.
 */
export function podSecurityAdmission(res: { group: string; kind: string }, namespace: string, object: JsonObject, old: JsonObject | undefined, lookup: PodSecurityLookup): string[] {
  const name = String(obj(object.metadata).name ?? '');
  if (res.group === '' && res.kind === 'Namespace') {
    const decision = admitNamespace(object, old, () => lookup.pods(name));
    if (decision.invalid) throw invalid('Namespace', '', name, decision.invalid);
    return decision.warnings;
  }
  if (res.group === '' && res.kind === 'Pod') {
    const decision = admitPod(lookup.namespaceLabels(namespace), object, old);
    if (decision.refused !== undefined) throw forbidden({ group: '', plural: 'pods' }, name, decision.refused);
    return decision.warnings;
  }
  if (hasPodTemplate(res.group, res.kind)) return admitPodController(lookup.namespaceLabels(namespace), res.group, res.kind, object);
  return [];
}
