// The Pod Security Standards' checks, as k8s.io/pod-security-admission/policy evaluates them for
// the policy version of this server (v1.32, what `latest` means on a 1.32 kube-apiserver): a pod's
// metadata and spec and a level in, the failed checks out, each with upstream's forbidden reason
// and detail text. Pure: no store, no HTTP (the admission decisions are in pod-security-admission.ts).
import { obj, type JsonObject } from './json.ts';

export type Level = 'privileged' | 'baseline' | 'restricted';

/** One failed check: `forbiddenReason (forbiddenDetail)` in the aggregated message. */
export interface CheckResult {
  forbiddenReason: string;
  forbiddenDetail: string;
}

type Check = (metadata: JsonObject, spec: JsonObject) => CheckResult | undefined;

// ---------------------------------------------------------------------------------------------
// helpers, as policy/helpers.go and policy/visitor.go

function joinQuote(items: readonly string[]): string {
  return items.length === 0 ? '' : `"${items.join('", "')}"`;
}

function pluralize(singular: string, plural: string, count: number): string {
  return count === 1 ? singular : plural;
}

/** A sorted set's list, as sets.String.List() (byte order). */
function sortedSet(values: Iterable<string>): string[] {
  return [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Go's %q for the ASCII strings labels and annotations hold. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

function containersPhrase(names: readonly string[]): string {
  return `${pluralize('container', 'containers', names.length)} ${joinQuote(names)}`;
}

interface Container {
  name: string;
  securityContext: JsonObject | undefined;
  raw: JsonObject;
}

/** initContainers, containers, then ephemeralContainers, as visitContainers. */
function containersOf(spec: JsonObject): Container[] {
  const out: Container[] = [];
  for (const field of ['initContainers', 'containers', 'ephemeralContainers']) {
    const list = spec[field];
    if (!Array.isArray(list)) continue;
    for (const c of list) {
      const raw = obj(c);
      const sc = raw.securityContext;
      out.push({ name: String(raw.name ?? ''), securityContext: isSet(sc) ? obj(sc) : undefined, raw });
    }
  }
  return out;
}

/** A pointer field that is not nil. */
function isSet(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function podSecurityContext(spec: JsonObject): JsonObject | undefined {
  return isSet(spec.securityContext) ? obj(spec.securityContext) : undefined;
}

function isWindows(spec: JsonObject): boolean {
  return obj(spec.os).name === 'windows';
}

function annotationsOf(metadata: JsonObject): Record<string, string> {
  const a = obj(metadata.annotations);
  return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, String(v)]));
}

// ---------------------------------------------------------------------------------------------
// baseline checks

const APPARMOR_ANNOTATION_PREFIX = 'container.apparmor.security.beta.kubernetes.io/';

/**
 * Who sets a profile field (`appArmorProfile`, `seccompProfile`) to a type `allowed` refuses: the
 * pod, then the containers (one phrase), with the types they set, as both upstream checks collect them.
 */
function refusedProfileTypes(spec: JsonObject, field: string, allowed: (type: unknown) => boolean): { setters: string[]; values: string[] } {
  const setters: string[] = [];
  const values: string[] = [];
  const podProfile = podSecurityContext(spec)?.[field];
  if (isSet(podProfile) && !allowed(obj(podProfile).type)) {
    setters.push('pod');
    values.push(String(obj(podProfile).type ?? ''));
  }
  const containers: string[] = [];
  for (const c of containersOf(spec)) {
    const profile = c.securityContext?.[field];
    if (isSet(profile) && !allowed(obj(profile).type)) {
      containers.push(c.name);
      values.push(String(obj(profile).type ?? ''));
    }
  }
  if (containers.length > 0) setters.push(containersPhrase(containers));
  return { setters, values };
}

const appArmorProfile: Check = (metadata, spec) => {
  const allowedType = (t: unknown): boolean => t === 'RuntimeDefault' || t === 'Localhost';
  const allowedAnnotation = (v: string): boolean => v === '' || v === 'runtime/default' || v.startsWith('localhost/');
  const { setters: badSetters, values: badValues } = refusedProfileTypes(spec, 'appArmorProfile', allowedType);
  const forbiddenAnnotations: string[] = [];
  for (const [k, v] of Object.entries(annotationsOf(metadata))) {
    if (k.startsWith(APPARMOR_ANNOTATION_PREFIX) && !allowedAnnotation(v)) forbiddenAnnotations.push(`${k}=${goQuote(v)}`);
  }
  const badValueList = sortedSet(badValues);
  if (forbiddenAnnotations.length > 0) {
    badValueList.push(...sortedSet(forbiddenAnnotations));
    badSetters.push(pluralize('annotation', 'annotations', forbiddenAnnotations.length));
  }
  if (badSetters.length === 0) return undefined;
  return {
    forbiddenReason: pluralize('forbidden AppArmor profile', 'forbidden AppArmor profiles', badValueList.length),
    forbiddenDetail: `${badSetters.join(' and ')} must not set AppArmor profile type to ${joinQuote(badValueList)}`,
  };
};

const BASELINE_CAPABILITIES = new Set(['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT']);

function capabilitiesOf(c: Container): { add: string[]; drop: string[] } | undefined {
  const caps = c.securityContext?.capabilities;
  if (!isSet(caps)) return undefined;
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);
  return { add: list(obj(caps).add), drop: list(obj(caps).drop) };
}

const capabilitiesBaseline: Check = (_metadata, spec) => {
  const badContainers: string[] = [];
  const nonDefault: string[] = [];
  for (const c of containersOf(spec)) {
    const caps = capabilitiesOf(c);
    if (!caps) continue;
    const bad = caps.add.filter((cap) => !BASELINE_CAPABILITIES.has(cap));
    if (bad.length > 0) {
      badContainers.push(c.name);
      nonDefault.push(...bad);
    }
  }
  if (badContainers.length === 0) return undefined;
  return {
    forbiddenReason: 'non-default capabilities',
    forbiddenDetail: `${containersPhrase(badContainers)} must not include ${joinQuote(sortedSet(nonDefault))} in securityContext.capabilities.add`,
  };
};

const hostNamespaces: Check = (_metadata, spec) => {
  const used: string[] = [];
  if (spec.hostNetwork === true) used.push('hostNetwork=true');
  if (spec.hostPID === true) used.push('hostPID=true');
  if (spec.hostIPC === true) used.push('hostIPC=true');
  return used.length === 0 ? undefined : { forbiddenReason: 'host namespaces', forbiddenDetail: used.join(', ') };
};

function volumesOf(spec: JsonObject): JsonObject[] {
  return Array.isArray(spec.volumes) ? spec.volumes.map(obj) : [];
}

const hostPathVolumes: Check = (_metadata, spec) => {
  const names = volumesOf(spec).filter((v) => isSet(v.hostPath)).map((v) => String(v.name ?? ''));
  if (names.length === 0) return undefined;
  return { forbiddenReason: 'hostPath volumes', forbiddenDetail: `${pluralize('volume', 'volumes', names.length)} ${joinQuote(names)}` };
};

const hostPorts: Check = (_metadata, spec) => {
  const badContainers: string[] = [];
  const ports: string[] = [];
  for (const c of containersOf(spec)) {
    const used = (Array.isArray(c.raw.ports) ? c.raw.ports.map(obj) : []).map((p) => Number(p.hostPort ?? 0)).filter((p) => p !== 0);
    if (used.length > 0) {
      badContainers.push(c.name);
      ports.push(...used.map(String));
    }
  }
  if (badContainers.length === 0) return undefined;
  const portList = sortedSet(ports);
  return {
    forbiddenReason: 'hostPort',
    forbiddenDetail: `${containersPhrase(badContainers)} ${pluralize('uses', 'use', badContainers.length)} ${pluralize('hostPort', 'hostPorts', portList.length)} ${portList.join(', ')}`,
  };
};

const privileged: Check = (_metadata, spec) => {
  const bad = containersOf(spec).filter((c) => c.securityContext?.privileged === true).map((c) => c.name);
  if (bad.length === 0) return undefined;
  return { forbiddenReason: 'privileged', forbiddenDetail: `${containersPhrase(bad)} must not set securityContext.privileged=true` };
};

const procMount: Check = (_metadata, spec) => {
  const badContainers: string[] = [];
  const types: string[] = [];
  for (const c of containersOf(spec)) {
    const pm = c.securityContext?.procMount;
    if (!isSet(pm) || pm === 'Default') continue;
    badContainers.push(c.name);
    types.push(String(pm));
  }
  if (badContainers.length === 0) return undefined;
  return { forbiddenReason: 'procMount', forbiddenDetail: `${containersPhrase(badContainers)} must not set securityContext.procMount to ${joinQuote(sortedSet(types))}` };
};

const SELINUX_TYPES = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);

const seLinuxOptions: Check = (_metadata, spec) => {
  const badSetters: string[] = [];
  const badTypes: string[] = [];
  let setUser = false;
  let setRole = false;
  const valid = (opts: JsonObject): boolean => {
    let ok = true;
    const type = String(opts.type ?? '');
    if (!SELINUX_TYPES.has(type)) {
      ok = false;
      badTypes.push(type);
    }
    if (String(opts.user ?? '').length > 0) {
      ok = false;
      setUser = true;
    }
    if (String(opts.role ?? '').length > 0) {
      ok = false;
      setRole = true;
    }
    return ok;
  };
  const podOpts = podSecurityContext(spec)?.seLinuxOptions;
  if (isSet(podOpts) && !valid(obj(podOpts))) badSetters.push('pod');
  const badContainers = containersOf(spec)
    .filter((c) => isSet(c.securityContext?.seLinuxOptions) && !valid(obj(c.securityContext?.seLinuxOptions)))
    .map((c) => c.name);
  if (badContainers.length > 0) badSetters.push(containersPhrase(badContainers));
  if (badSetters.length === 0) return undefined;
  const badData: string[] = [];
  const types = sortedSet(badTypes);
  if (types.length > 0) badData.push(`${pluralize('type', 'types', types.length)} ${joinQuote(types)}`);
  if (setUser) badData.push('user may not be set');
  if (setRole) badData.push('role may not be set');
  return { forbiddenReason: 'seLinuxOptions', forbiddenDetail: `${badSetters.join(' and ')} set forbidden securityContext.seLinuxOptions: ${badData.join('; ')}` };
};

const validSeccomp = (t: unknown): boolean => t === 'Localhost' || t === 'RuntimeDefault';

const seccompProfileBaseline: Check = (_metadata, spec) => {
  const { setters: badSetters, values: badValues } = refusedProfileTypes(spec, 'seccompProfile', validSeccomp);
  if (badSetters.length === 0) return undefined;
  return { forbiddenReason: 'seccompProfile', forbiddenDetail: `${badSetters.join(' and ')} must not set securityContext.seccompProfile.type to ${joinQuote(sortedSet(badValues))}` };
};

const ALLOWED_SYSCTLS = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.ip_local_reserved_ports', // 1.27
  'net.ipv4.tcp_keepalive_time', // 1.29
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
  'net.ipv4.tcp_rmem', // 1.32
  'net.ipv4.tcp_wmem',
]);

const sysctls: Check = (_metadata, spec) => {
  const list = podSecurityContext(spec)?.sysctls;
  const forbidden = (Array.isArray(list) ? list.map(obj) : []).map((s) => String(s.name ?? '')).filter((n) => !ALLOWED_SYSCTLS.has(n));
  return forbidden.length === 0 ? undefined : { forbiddenReason: 'forbidden sysctls', forbiddenDetail: forbidden.join(', ') };
};

const windowsHostProcess: Check = (_metadata, spec) => {
  const hostProcess = (sc: JsonObject | undefined): boolean => obj(sc?.windowsOptions).hostProcess === true;
  const setters: string[] = [];
  if (hostProcess(podSecurityContext(spec))) setters.push('pod');
  const bad = containersOf(spec).filter((c) => hostProcess(c.securityContext)).map((c) => c.name);
  if (bad.length > 0) setters.push(containersPhrase(bad));
  if (setters.length === 0) return undefined;
  return { forbiddenReason: 'hostProcess', forbiddenDetail: `${setters.join(' and ')} must not set securityContext.windowsOptions.hostProcess=true` };
};

// ---------------------------------------------------------------------------------------------
// restricted checks

const allowPrivilegeEscalation: Check = (_metadata, spec) => {
  if (isWindows(spec)) return undefined;
  const bad = containersOf(spec).filter((c) => c.securityContext?.allowPrivilegeEscalation !== false).map((c) => c.name);
  if (bad.length === 0) return undefined;
  return { forbiddenReason: 'allowPrivilegeEscalation != false', forbiddenDetail: `${containersPhrase(bad)} must set securityContext.allowPrivilegeEscalation=false` };
};

const capabilitiesRestricted: Check = (_metadata, spec) => {
  if (isWindows(spec)) return undefined;
  const missingDropAll: string[] = [];
  const addingForbidden: string[] = [];
  const forbidden: string[] = [];
  for (const c of containersOf(spec)) {
    const caps = capabilitiesOf(c);
    if (!caps) {
      missingDropAll.push(c.name);
      continue;
    }
    if (!caps.drop.includes('ALL')) missingDropAll.push(c.name);
    const bad = caps.add.filter((cap) => cap !== 'NET_BIND_SERVICE');
    if (bad.length > 0) {
      addingForbidden.push(c.name);
      forbidden.push(...bad);
    }
  }
  const details: string[] = [];
  if (missingDropAll.length > 0) details.push(`${containersPhrase(missingDropAll)} must set securityContext.capabilities.drop=["ALL"]`);
  if (addingForbidden.length > 0) details.push(`${containersPhrase(addingForbidden)} must not include ${joinQuote(sortedSet(forbidden))} in securityContext.capabilities.add`);
  return details.length === 0 ? undefined : { forbiddenReason: 'unrestricted capabilities', forbiddenDetail: details.join('; ') };
};

const ALLOWED_VOLUME_SOURCES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'image', 'persistentVolumeClaim', 'projected', 'secret'];
/** In the order upstream's switch names them. */
const RESTRICTED_VOLUME_SOURCES = [
  'hostPath',
  'gcePersistentDisk',
  'awsElasticBlockStore',
  'gitRepo',
  'nfs',
  'iscsi',
  'glusterfs',
  'rbd',
  'flexVolume',
  'cinder',
  'cephfs',
  'flocker',
  'fc',
  'azureFile',
  'vsphereVolume',
  'quobyte',
  'azureDisk',
  'photonPersistentDisk',
  'portworxVolume',
  'scaleIO',
  'storageos',
];

const restrictedVolumes: Check = (_metadata, spec) => {
  const badVolumes: string[] = [];
  const badTypes: string[] = [];
  for (const v of volumesOf(spec)) {
    if (ALLOWED_VOLUME_SOURCES.some((s) => isSet(v[s]))) continue;
    badVolumes.push(String(v.name ?? ''));
    badTypes.push(RESTRICTED_VOLUME_SOURCES.find((s) => isSet(v[s])) ?? 'unknown');
  }
  if (badVolumes.length === 0) return undefined;
  const types = sortedSet(badTypes);
  return {
    forbiddenReason: 'restricted volume types',
    forbiddenDetail: `${pluralize('volume', 'volumes', badVolumes.length)} ${joinQuote(badVolumes)} ${pluralize('uses', 'use', badVolumes.length)} ${pluralize('restricted volume type', 'restricted volume types', types.length)} ${joinQuote(types)}`,
  };
};

const runAsNonRoot: Check = (_metadata, spec) => {
  const badSetters: string[] = [];
  let podRunAsNonRoot = false;
  const podValue = podSecurityContext(spec)?.runAsNonRoot;
  if (isSet(podValue)) {
    if (podValue !== true) badSetters.push('pod');
    else podRunAsNonRoot = true;
  }
  const explicit: string[] = [];
  const implicit: string[] = [];
  for (const c of containersOf(spec)) {
    const value = c.securityContext?.runAsNonRoot;
    if (isSet(value)) {
      if (value !== true) explicit.push(c.name);
    } else if (!podRunAsNonRoot) implicit.push(c.name);
  }
  if (explicit.length > 0) badSetters.push(containersPhrase(explicit));
  if (badSetters.length > 0) return { forbiddenReason: 'runAsNonRoot != true', forbiddenDetail: `${badSetters.join(' and ')} must not set securityContext.runAsNonRoot=false` };
  if (implicit.length > 0) return { forbiddenReason: 'runAsNonRoot != true', forbiddenDetail: `pod or ${containersPhrase(implicit)} must set securityContext.runAsNonRoot=true` };
  return undefined;
};

const runAsUser: Check = (_metadata, spec) => {
  const badSetters: string[] = [];
  if (podSecurityContext(spec)?.runAsUser === 0) badSetters.push('pod');
  const bad = containersOf(spec).filter((c) => c.securityContext?.runAsUser === 0).map((c) => c.name);
  if (bad.length > 0) badSetters.push(containersPhrase(bad));
  return badSetters.length === 0 ? undefined : { forbiddenReason: 'runAsUser=0', forbiddenDetail: `${badSetters.join(' and ')} must not set runAsUser=0` };
};

const seccompProfileRestricted: Check = (_metadata, spec) => {
  if (isWindows(spec)) return undefined;
  const badSetters: string[] = [];
  const badValues: string[] = [];
  let podSeccompSet = false;
  const podProfile = podSecurityContext(spec)?.seccompProfile;
  if (isSet(podProfile)) {
    if (!validSeccomp(obj(podProfile).type)) {
      badSetters.push('pod');
      badValues.push(String(obj(podProfile).type ?? ''));
    } else podSeccompSet = true;
  }
  const explicit: string[] = [];
  const implicit: string[] = [];
  for (const c of containersOf(spec)) {
    const profile = c.securityContext?.seccompProfile;
    if (isSet(profile)) {
      if (!validSeccomp(obj(profile).type)) {
        explicit.push(c.name);
        badValues.push(String(obj(profile).type ?? ''));
      }
    } else if (!podSeccompSet) implicit.push(c.name);
  }
  if (explicit.length > 0) badSetters.push(containersPhrase(explicit));
  if (badSetters.length > 0) {
    return { forbiddenReason: 'seccompProfile', forbiddenDetail: `${badSetters.join(' and ')} must not set securityContext.seccompProfile.type to ${joinQuote(sortedSet(badValues))}` };
  }
  if (implicit.length > 0) {
    return { forbiddenReason: 'seccompProfile', forbiddenDetail: `pod or ${containersPhrase(implicit)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"` };
  }
  return undefined;
};

// ---------------------------------------------------------------------------------------------
// the levels: upstream orders checks by ID (baseline first, then restricted), and a restricted
// check replaces the baseline check it overrides (capabilities, hostPath volumes, seccomp).

/** Check IDs in evaluation order, with the check. */
export const BASELINE_CHECKS: ReadonlyArray<readonly [string, Check]> = [
  ['appArmorProfile', appArmorProfile],
  ['capabilities_baseline', capabilitiesBaseline],
  ['hostNamespaces', hostNamespaces],
  ['hostPathVolumes', hostPathVolumes],
  ['hostPorts', hostPorts],
  ['privileged', privileged],
  ['procMount', procMount],
  ['seLinuxOptions', seLinuxOptions],
  ['seccompProfile_baseline', seccompProfileBaseline],
  ['sysctls', sysctls],
  ['windowsHostProcess', windowsHostProcess],
];

const OVERRIDDEN_BY_RESTRICTED = new Set(['capabilities_baseline', 'hostPathVolumes', 'seccompProfile_baseline']);

export const RESTRICTED_CHECKS: ReadonlyArray<readonly [string, Check]> = [
  ...BASELINE_CHECKS.filter(([id]) => !OVERRIDDEN_BY_RESTRICTED.has(id)),
  ['allowPrivilegeEscalation', allowPrivilegeEscalation],
  ['capabilities_restricted', capabilitiesRestricted],
  ['restrictedVolumes', restrictedVolumes],
  ['runAsNonRoot', runAsNonRoot],
  ['runAsUser', runAsUser],
  ['seccompProfile_restricted', seccompProfileRestricted],
];

/** The failed checks of a pod (its metadata and spec, or a template's) at a level, in upstream's order. */
export function evaluatePod(level: Level, metadata: unknown, spec: unknown): CheckResult[] {
  if (level === 'privileged') return [];
  const checks = level === 'baseline' ? BASELINE_CHECKS : RESTRICTED_CHECKS;
  const out: CheckResult[] = [];
  for (const [, check] of checks) {
    const result = check(obj(metadata), obj(spec));
    if (result) out.push(result);
  }
  return out;
}

/** `reason (detail), reason (detail)`, as AggregateCheckResult.ForbiddenDetail. */
export function forbiddenDetail(results: readonly CheckResult[]): string {
  return results.map((r) => (r.forbiddenDetail ? `${r.forbiddenReason} (${r.forbiddenDetail})` : r.forbiddenReason)).join(', ');
}

/** `reason, reason`, as AggregateCheckResult.ForbiddenReason. */
export function forbiddenReason(results: readonly CheckResult[]): string {
  return results.map((r) => r.forbiddenReason).join(', ');
}
