// A pod's volumes as directories on this node, and each container's mounts of them. Secret,
// ConfigMap, downward API and projected volumes are written as the kubelet's AtomicWriter writes
// them (atomic-writer.ts: a timestamped directory behind the `..data` link), when the pod starts
// and again whenever what they project changes while it runs (syncVolumes, called every sync
// period); projected service-account tokens come from the API server's TokenRequest, bound to
// the pod, and are renewed at 80% of their lifetime. With a pod fsGroup, volumes are made the
// group's as kubelet's SetVolumeOwnership makes them (see setVolumeOwnership). hostPath volumes are
// directories of the node root, never the machine's own paths (node-root.ts).
import fs from 'node:fs/promises';
import path from 'node:path';
import type { V1Container, V1KeyToPath, V1PersistentVolumeClaim, V1Pod, V1Volume } from '@kubernetes/client-node';
import { writeAtomically, type PayloadFile } from './atomic-writer.ts';
import type { PullSecret } from './pull-secrets.ts';
import { fieldPath } from './env.ts';
import { podFsUser } from './identity.ts';
import type { BindMount } from './launcher.ts';
import { checkHostPathType, HostPathError, hostPathOnNode, nodeRootDir, type HostPathRoots } from './node-root.ts';

export class VolumeError extends Error {
  /** the volume, when the message is upstream's for one volume (`MountVolume.SetUp failed for volume "v" : …`) */
  readonly volume: string | undefined;
  constructor(message: string, volume?: string) {
    super(message);
    this.volume = volume;
  }
}

/** Where the API server's admission mounts a pod's service-account credentials. */
export const SERVICE_ACCOUNT_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface TokenRequest {
  /** empty: the API server's own audience */
  audiences: string[];
  expirationSeconds: number;
  pod: { name: string; uid: string };
}

export interface IssuedToken {
  token: string;
  expirationTimestamp: Date;
}

export interface VolumeSources {
  /** data by key (Secret data decoded; ConfigMap data and binaryData), undefined when absent */
  secret(namespace: string, name: string): Promise<Record<string, Buffer> | undefined>;
  configMap(namespace: string, name: string): Promise<Record<string, Buffer> | undefined>;
  claim(namespace: string, name: string): Promise<V1PersistentVolumeClaim | undefined>;
  /** an image pull secret: its type and decoded data, undefined when absent */
  pullSecret(namespace: string, name: string): Promise<PullSecret | undefined>;
  /** a token for the service account (TokenRequest); throws VolumeError with the API's reason when refused */
  serviceAccountToken(namespace: string, serviceAccount: string, request: TokenRequest): Promise<IssuedToken>;
}

/** A token of a projected volume, renewed before it expires. */
export interface ProjectedToken {
  /** its path in the volume */
  path: string;
  serviceAccount: string;
  request: TokenRequest;
  token: string;
  issuedAt: number;
  expiresAt: number;
}

/** What a Secret, ConfigMap, downward API or projected volume is made of, to be written again when it changes. */
export interface Projection {
  volume: V1Volume;
  /** the current token of each serviceAccountToken source, by path */
  tokens: Map<string, ProjectedToken>;
}

export interface PreparedVolume {
  path: string;
  readOnly: boolean;
  projection?: Projection;
}

export interface ProjectedFile {
  path: string;
  content: Buffer;
  mode: number;
}

/** A PVC's storage on this node: one directory per namespace and claim name. */
export function claimDir(dataDir: string, namespace: string, claim: string): string {
  return path.join(dataDir, 'volumes', 'pvc', namespace, claim);
}

/** Files of a Secret/ConfigMap projection: all keys, or the listed `items` (each with its own mode). */
export function projectKeys(data: Record<string, Buffer>, items: readonly V1KeyToPath[] | undefined, defaultMode: number, what: string): ProjectedFile[] {
  if (!items || items.length === 0) {
    return Object.keys(data).sort().map((key) => ({ path: key, content: data[key]!, mode: defaultMode }));
  }
  return items.map((item) => {
    const content = data[item.key];
    if (content === undefined) throw new VolumeError(`configmap references non-existent config key: ${item.key} (${what})`);
    return { path: item.path, content, mode: item.mode ?? defaultMode };
  });
}

function downwardFiles(pod: V1Pod, items: NonNullable<NonNullable<V1Volume['downwardAPI']>['items']>, defaultMode: number, podIP: string): ProjectedFile[] {
  return items.map((item) => {
    const value = item.fieldRef ? (fieldPath(pod, item.fieldRef.fieldPath, { podIP, hostIP: '127.0.0.1', nodeName: pod.spec?.nodeName ?? '' }) ?? '') : '';
    return { path: item.path, content: Buffer.from(value), mode: item.mode ?? defaultMode };
  });
}

// kubelet's volume_linux.go: with an fsGroup, every file and directory of a volume gets that group
// and these permission bits added; directories also get the setgid bit, so what is created in
// them later belongs to the group too.
const RW_MASK = 0o660;
const RO_MASK = 0o440;
const EXEC_MASK = 0o110;
const SETGID = 0o2000;

function ownershipMask(isDirectory: boolean, readOnly: boolean): number {
  return (readOnly ? RO_MASK : RW_MASK) | (isDirectory ? EXEC_MASK | SETGID : 0);
}

/**
 * kubelet's SetVolumeOwnership: `dir` and everything below it (symlinks not followed) get group
 * `fsGroup` and group read (+write unless read-only) permission, directories group search and the
 * setgid bit. With `OnRootMismatch`, nothing is done when the root already has them.
 */
export async function setVolumeOwnership(dir: string, fsGroup: number, readOnly: boolean, changePolicy?: string): Promise<void> {
  if (changePolicy === 'OnRootMismatch') {
    const root = await fs.stat(dir);
    const wanted = ownershipMask(root.isDirectory(), readOnly);
    if (root.gid === fsGroup && (root.mode & wanted) === wanted) return;
  }
  const visit = async (file: string): Promise<void> => {
    const stat = await fs.lstat(file);
    await fs.lchown(file, -1, fsGroup);
    if (stat.isSymbolicLink()) return;
    await fs.chmod(file, (stat.mode & 0o7777) | ownershipMask(stat.isDirectory(), readOnly));
    if (stat.isDirectory()) for (const name of await fs.readdir(file)) await visit(path.join(file, name));
  };
  await visit(dir);
}

/** The files a projecting volume shows now; throws VolumeError when a source it needs is missing. */
async function projectionPayload(pod: V1Pod, projection: Projection, sources: VolumeSources, podIP: string, now: number): Promise<PayloadFile[]> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const volume = projection.volume;
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  const fsUser = podFsUser(pod);
  const files: Array<ProjectedFile & { uid?: number }> = [];
  if (volume.secret) {
    const name = volume.secret.secretName ?? '';
    const data = await sources.secret(namespace, name);
    if (!data && !volume.secret.optional) throw new VolumeError(`secret "${name}" not found`);
    if (data) files.push(...projectKeys(data, volume.secret.items, volume.secret.defaultMode ?? 0o644, `secret ${name}`));
  } else if (volume.configMap) {
    const name = volume.configMap.name ?? '';
    const data = await sources.configMap(namespace, name);
    if (!data && !volume.configMap.optional) throw new VolumeError(`configmap "${name}" not found`);
    if (data) files.push(...projectKeys(data, volume.configMap.items, volume.configMap.defaultMode ?? 0o644, `configmap ${name}`));
  } else if (volume.downwardAPI) {
    files.push(...downwardFiles(pod, volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? 0o644, podIP));
  } else if (volume.projected) {
    const mode = volume.projected.defaultMode ?? 0o644;
    for (const source of volume.projected.sources ?? []) {
      if (source.secret) {
        const data = await sources.secret(namespace, source.secret.name ?? '');
        if (!data && !source.secret.optional) throw new VolumeError(`secret "${source.secret.name}" not found`);
        if (data) files.push(...projectKeys(data, source.secret.items, mode, `secret ${source.secret.name}`));
      } else if (source.configMap) {
        const data = await sources.configMap(namespace, source.configMap.name ?? '');
        if (!data && !source.configMap.optional) throw new VolumeError(`configmap "${source.configMap.name}" not found`);
        if (data) files.push(...projectKeys(data, source.configMap.items, mode, `configmap ${source.configMap.name}`));
      } else if (source.downwardAPI) {
        files.push(...downwardFiles(pod, source.downwardAPI.items ?? [], mode, podIP));
      } else if (source.serviceAccountToken) {
        const tokenPath = source.serviceAccountToken.path;
        let token = projection.tokens.get(tokenPath);
        if (!token || tokenRefreshAt(token) <= now) {
          const serviceAccount = pod.spec?.serviceAccountName || 'default';
          const request: TokenRequest = {
            audiences: source.serviceAccountToken.audience ? [source.serviceAccountToken.audience] : [],
            expirationSeconds: source.serviceAccountToken.expirationSeconds ?? 3600,
            pod: { name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' },
          };
          let issued: IssuedToken;
          try {
            issued = await sources.serviceAccountToken(namespace, serviceAccount, request);
          } catch (error) {
            throw new VolumeError(`volume "${volume.name}": failed to fetch token: ${error instanceof Error ? error.message : String(error)}`);
          }
          token = { path: tokenPath, serviceAccount, request, token: issued.token, issuedAt: now, expiresAt: issued.expirationTimestamp.getTime() };
          projection.tokens.set(tokenPath, token);
        }
        // Owned by the pod's one runAsUser, if it has one (kubelet's fsUser), so that a 0600 token is readable.
        files.push({ path: tokenPath, content: Buffer.from(token.token), mode, ...(fsUser !== undefined ? { uid: fsUser } : {}) });
      }
    }
  }
  // With an fsGroup, SetVolumeOwnership adds group read after each write: the payload says so
  // already, so that an unchanged volume compares equal and is not written again.
  return files.map((f) => ({ ...f, mode: fsGroup !== undefined ? f.mode | RO_MASK : f.mode }));
}

/** Writes a projecting volume again if what it shows changed; returns whether it did. */
async function syncProjection(pod: V1Pod, volume: PreparedVolume & { projection: Projection }, sources: VolumeSources, podIP: string, now: number): Promise<boolean> {
  const payload = await projectionPayload(pod, volume.projection, sources, podIP, now);
  let written: boolean;
  try {
    written = await writeAtomically(volume.path, payload, new Date(now));
  } catch (error) {
    throw new VolumeError(`volume "${volume.projection.volume.name}": ${error instanceof Error ? error.message : String(error)}`);
  }
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  if (written && fsGroup !== undefined) await setVolumeOwnership(volume.path, fsGroup, true);
  return written;
}

/** Makes every volume of the pod exist on disk. Throws VolumeError (a FailedMount) when one cannot. */
export async function prepareVolumes(
  pod: V1Pod,
  podDir: string,
  dataDir: string,
  sources: VolumeSources,
  podIP: string,
  roots: HostPathRoots = { nodeRoot: nodeRootDir(dataDir) },
): Promise<Map<string, PreparedVolume>> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const prepared = new Map<string, PreparedVolume>();
  const securityContext = pod.spec?.securityContext;
  const fsGroup = securityContext?.fsGroup;
  for (const volume of pod.spec?.volumes ?? []) {
    const dir = path.join(podDir, 'volumes', volume.name);
    if (volume.emptyDir) {
      // World-writable, as kubelet makes it (chmod after mkdir: the umask would take bits off).
      await fs.mkdir(dir, { recursive: true });
      await fs.chmod(dir, 0o777);
      if (fsGroup !== undefined) await setVolumeOwnership(dir, fsGroup, false);
      prepared.set(volume.name, { path: dir, readOnly: false });
    } else if (volume.persistentVolumeClaim) {
      const name = volume.persistentVolumeClaim.claimName;
      const claim = await sources.claim(namespace, name);
      if (!claim) throw new VolumeError(`persistentvolumeclaim "${name}" not found`);
      if (claim.metadata?.deletionTimestamp) throw new VolumeError(`persistentvolumeclaim "${name}" is being deleted`);
      const storage = claimDir(dataDir, namespace, name);
      await fs.mkdir(storage, { recursive: true });
      const readOnly = volume.persistentVolumeClaim.readOnly ?? false;
      if (fsGroup !== undefined) await setVolumeOwnership(storage, fsGroup, readOnly, securityContext?.fsGroupChangePolicy);
      prepared.set(volume.name, { path: storage, readOnly });
    } else if (volume.secret || volume.configMap || volume.downwardAPI || volume.projected) {
      const projected = { path: dir, readOnly: true, projection: { volume, tokens: new Map<string, ProjectedToken>() } };
      await syncProjection(pod, projected, sources, podIP, Date.now());
      prepared.set(volume.name, projected);
    } else if (volume.hostPath) {
      // Never the machine's own path: the node root, or the certs dir for containerd's hosts directory (node-root.ts).
      const shown = volume.hostPath.path;
      try {
        const real = hostPathOnNode(shown, roots);
        await checkHostPathType(real, volume.hostPath.type ?? '', shown);
        prepared.set(volume.name, { path: real, readOnly: false });
      } catch (error) {
        if (error instanceof HostPathError) throw new VolumeError(error.message, volume.name);
        throw error;
      }
    } else {
      throw new VolumeError(`volume "${volume.name}": only emptyDir, persistentVolumeClaim, secret, configMap, downwardAPI, projected and hostPath volumes are supported on this node`);
    }
  }
  return prepared;
}

/** Kubelets renew a projected token once 80% of its lifetime has passed, or once it is a day old. */
export function tokenRefreshAt(token: Pick<ProjectedToken, 'issuedAt' | 'expiresAt'>): number {
  return Math.min(token.issuedAt + 0.8 * (token.expiresAt - token.issuedAt), token.issuedAt + 24 * 3600_000);
}

/** What one sync of a pod's projecting volumes did. */
export interface VolumeSync {
  /** the volumes written again */
  updated: string[];
  /** volumes that could not be brought up to date (they keep what they showed), with the reason */
  failed: Array<{ volume: string; message: string }>;
  /** when the next token is due, if the volumes hold any */
  nextTokenDue?: number;
}

/**
 * The kubelet's periodic remount of Secret, ConfigMap, downward API and projected volumes: each
 * is written again (atomically, see atomic-writer.ts) when what it projects changed, and due
 * tokens are renewed. `pod` is the pod as the API shows it now (labels and annotations may have
 * changed). A volume whose source went missing keeps its files, as the kubelet leaves them.
 */
export async function syncVolumes(pod: V1Pod, volumes: ReadonlyMap<string, PreparedVolume>, sources: VolumeSources, podIP: string, now = Date.now()): Promise<VolumeSync> {
  const result: VolumeSync = { updated: [], failed: [] };
  for (const [name, volume] of volumes) {
    const projection = volume.projection;
    if (!projection) continue;
    try {
      if (await syncProjection(pod, { ...volume, projection }, sources, podIP, now)) result.updated.push(name);
    } catch (error) {
      result.failed.push({ volume: name, message: error instanceof Error ? error.message : String(error) });
    }
    for (const token of projection.tokens.values()) result.nextTokenDue = Math.min(result.nextTokenDue ?? Infinity, tokenRefreshAt(token));
  }
  return result;
}

/** A container's volume mounts as bind mounts (subPath: a directory inside the volume, made if missing). */
export async function containerMounts(container: V1Container, volumes: ReadonlyMap<string, PreparedVolume>): Promise<BindMount[]> {
  const mounts: BindMount[] = [];
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.get(mount.name);
    if (!volume) throw new VolumeError(`volume "${mount.name}" of container "${container.name}" is not defined`);
    let source = volume.path;
    if (mount.subPath) {
      source = path.join(volume.path, mount.subPath);
      if (!source.startsWith(volume.path + path.sep)) throw new VolumeError(`subPath "${mount.subPath}" leaves the volume`);
      try {
        await fs.access(source);
      } catch {
        // As kubelet makes it: with the volume root's permissions (an fsGroup's g+rwx and setgid too).
        const mode = (await fs.stat(volume.path)).mode & 0o7777;
        await fs.mkdir(source, { recursive: true, mode: mode & 0o777 });
        await fs.chmod(source, mode);
      }
    }
    const isFile = (await fs.stat(source)).isFile();
    mounts.push({ source, target: mount.mountPath, readOnly: Boolean(mount.readOnly) || volume.readOnly, kind: isFile ? 'file' : 'dir' });
  }
  return mounts;
}
