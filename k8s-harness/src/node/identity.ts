// Who a pulled image's container runs as, decided as kubelet and containerd decide it. Pure: the
// image's /etc/passwd and /etc/group come in as text.
//
// - kubelet (kuberuntime): the effective securityContext is the container's field, else the pod's.
//   The image's user comes from its config `User`, cut at ':' (containerd's getUserFromImage): a
//   number is a uid, anything else a user name, nothing is uid 0. runAsNonRoot is verified here
//   (verifyRunAsNonRoot), before anything is created: a failure is CreateContainerConfigError.
//   The CRI request then carries runAsUser (the pod's, else the image's uid) or the image's user
//   name, runAsGroup, and supplemental groups fsGroup and supplementalGroups.
// - containerd (CRI, oci.WithUser/WithUserID/WithUsername/WithAdditionalGIDs): uid from the
//   number, or the name looked up in the image's /etc/passwd (not found: the container cannot be
//   created, CreateContainerError); gid = runAsGroup, else the passwd entry's primary group, else
//   0. The group part of the image's `User` is never used (kubernetes/kubernetes#61967, #93666;
//   containerd/containerd#11607). Additional groups: the primary gid, the groups of /etc/group that
//   list the user by name (unless supplementalGroupsPolicy is Strict), then fsGroup and
//   supplementalGroups.
// - runc: HOME, when the process environment has none, is the passwd entry's home directory, else /.
import type { V1Container, V1Pod } from '@kubernetes/client-node';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface Identity {
  uid: number;
  gid: number;
  /** supplementary groups, the primary gid first, without duplicates */
  groups: number[];
  /** for HOME when the environment has none */
  home: string;
}

export type IdentityResult =
  | { ok: true; identity: Identity }
  | { ok: false; reason: 'CreateContainerConfigError' | 'CreateContainerError'; message: string };

/** The security settings a container runs with: its own, else the pod's (per field). */
export interface EffectiveSecurity {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
}

const MAX_USER_ID = 2147483647;

function numericId(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** `/etc/passwd` lines `name:password:uid:gid:gecos:home:shell`; comments and malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(':');
    const uid = numericId(fields[2] ?? '');
    const gid = numericId(fields[3] ?? '');
    if (!fields[0] || uid === undefined || gid === undefined) continue;
    entries.push({ name: fields[0], uid, gid, home: fields[5] ?? '' });
  }
  return entries;
}

/** `/etc/group` lines `name:password:gid:member,member`; comments and malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(':');
    const gid = numericId(fields[2] ?? '');
    if (!fields[0] || gid === undefined) continue;
    entries.push({ name: fields[0], gid, members: (fields[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return entries;
}

/** kubelet's DetermineEffectiveSecurityContext, for the fields this node honours. */
export function effectiveSecurity(pod: V1Pod, container: V1Container): EffectiveSecurity {
  const p = pod.spec?.securityContext ?? {};
  const c = container.securityContext ?? {};
  const result: EffectiveSecurity = {};
  const runAsUser = c.runAsUser ?? p.runAsUser;
  const runAsGroup = c.runAsGroup ?? p.runAsGroup;
  const runAsNonRoot = c.runAsNonRoot ?? p.runAsNonRoot;
  if (runAsUser !== undefined) result.runAsUser = runAsUser;
  if (runAsGroup !== undefined) result.runAsGroup = runAsGroup;
  if (runAsNonRoot !== undefined) result.runAsNonRoot = runAsNonRoot;
  if (c.readOnlyRootFilesystem !== undefined) result.readOnlyRootFilesystem = c.readOnlyRootFilesystem;
  if (c.allowPrivilegeEscalation !== undefined) result.allowPrivilegeEscalation = c.allowPrivilegeEscalation;
  return result;
}

/** kubelet's format.Pod: `name_namespace(uid)`. */
export function podDescription(pod: V1Pod): string {
  return `${pod.metadata?.name ?? ''}_${pod.metadata?.namespace ?? ''}(${pod.metadata?.uid ?? ''})`;
}

/** The image config's `User` as the runtime reports it to kubelet: a uid, a user name, or (empty) uid 0. */
export function imageUser(user: string | undefined): { uid: number } | { name: string } {
  const part = (user ?? '').split(':')[0] ?? '';
  if (part === '') return { uid: 0 };
  const uid = numericId(part);
  return uid !== undefined ? { uid } : { name: part };
}

/** kubelet's verifyRunAsNonRoot: an error message, or undefined when the container may start. */
export function verifyRunAsNonRoot(pod: V1Pod, container: V1Container, image: { uid: number } | { name: string }): string | undefined {
  const sc = effectiveSecurity(pod, container);
  if (!sc.runAsNonRoot) return undefined;
  const where = `(pod: ${JSON.stringify(podDescription(pod))}, container: ${container.name})`;
  if (sc.runAsUser !== undefined) return sc.runAsUser === 0 ? `container's runAsUser breaks non-root policy ${where}` : undefined;
  if ('name' in image) return `container has runAsNonRoot and image has non-numeric user (${image.name}), cannot verify user is non-root ${where}`;
  if (image.uid === 0) return `container has runAsNonRoot and image will run as root ${where}`;
  if (image.uid > MAX_USER_ID) {
    return `container has runAsNonRoot and image has an invalid user id (${image.uid}). (Must be 1-(${MAX_USER_ID})): must be between 0 and ${MAX_USER_ID}, inclusive ${where}`;
  }
  return undefined;
}

export interface IdentityInputs {
  pod: V1Pod;
  container: V1Container;
  /** the image config's `User` */
  user: string | undefined;
  /** the image's /etc/passwd and /etc/group, undefined when it has none */
  passwd: string | undefined;
  group: string | undefined;
}

/** The uid, gid, supplementary groups and home directory a pulled image's container runs with. */
export function resolveIdentity(inputs: IdentityInputs): IdentityResult {
  const { pod, container } = inputs;
  const fromImage = imageUser(inputs.user);
  const nonRoot = verifyRunAsNonRoot(pod, container, fromImage);
  if (nonRoot) return { ok: false, reason: 'CreateContainerConfigError', message: nonRoot };

  const sc = effectiveSecurity(pod, container);
  const users = parsePasswd(inputs.passwd ?? '');
  const groups = parseGroup(inputs.group ?? '');
  const who: { uid: number } | { name: string } = sc.runAsUser !== undefined ? { uid: sc.runAsUser } : fromImage;
  let entry: PasswdEntry | undefined;
  let uid: number;
  if ('name' in who) {
    entry = users.find((u) => u.name === who.name);
    if (!entry) return { ok: false, reason: 'CreateContainerError', message: `unable to find user ${who.name}: no matching entries in passwd file` };
    uid = entry.uid;
  } else {
    uid = who.uid;
    entry = users.find((u) => u.uid === uid);
  }
  const gid = sc.runAsGroup ?? entry?.gid ?? 0;

  const supplementary: number[] = [gid];
  const podSc = pod.spec?.securityContext;
  if (entry && podSc?.supplementalGroupsPolicy !== 'Strict') {
    const name = entry.name;
    for (const g of groups) if (g.name !== name && g.members.includes(name)) supplementary.push(g.gid);
  }
  if (podSc?.fsGroup !== undefined) supplementary.push(podSc.fsGroup);
  for (const g of podSc?.supplementalGroups ?? []) supplementary.push(g);
  return { ok: true, identity: { uid, gid, groups: [...new Set(supplementary)], home: entry?.home || '/' } };
}

/**
 * kubelet's FsUserFrom: the uid every container of the pod runs as, when all (init containers
 * too) set one and it is the same — projected service-account tokens are then owned by it.
 */
export function podFsUser(pod: V1Pod): number | undefined {
  let user: number | undefined;
  for (const container of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    const runAsUser = effectiveSecurity(pod, container).runAsUser;
    if (runAsUser === undefined || (user !== undefined && user !== runAsUser)) return undefined;
    user = runAsUser;
  }
  return user;
}
