// A pod's volumes as directories on this node, and each container's mounts of them. Secret,
// ConfigMap, downward API and projected volumes are written as files once, when the pod starts.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { V1Container, V1KeyToPath, V1PersistentVolumeClaim, V1Pod, V1Volume } from '@kubernetes/client-node';
import { fieldPath } from './env.ts';
import type { BindMount } from './launcher.ts';

export class VolumeError extends Error {}

export interface VolumeSources {
  /** data by key (Secret data decoded; ConfigMap data and binaryData), undefined when absent */
  secret(namespace: string, name: string): Promise<Record<string, Buffer> | undefined>;
  configMap(namespace: string, name: string): Promise<Record<string, Buffer> | undefined>;
  claim(namespace: string, name: string): Promise<V1PersistentVolumeClaim | undefined>;
}

export interface PreparedVolume {
  path: string;
  readOnly: boolean;
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

async function writeFiles(dir: string, files: readonly ProjectedFile[]): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  for (const file of files) {
    const target = path.join(dir, file.path);
    if (!target.startsWith(dir + path.sep)) throw new VolumeError(`invalid path ${file.path}`);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.writeFile(target, file.content, { mode: file.mode });
    await fs.chmod(target, file.mode);
  }
}

/** Makes every volume of the pod exist on disk. Throws VolumeError (a FailedMount) when one cannot. */
export async function prepareVolumes(pod: V1Pod, podDir: string, dataDir: string, sources: VolumeSources, podIP: string): Promise<Map<string, PreparedVolume>> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const prepared = new Map<string, PreparedVolume>();
  for (const volume of pod.spec?.volumes ?? []) {
    const dir = path.join(podDir, 'volumes', volume.name);
    if (volume.emptyDir) {
      await fs.mkdir(dir, { recursive: true, mode: 0o777 });
      prepared.set(volume.name, { path: dir, readOnly: false });
    } else if (volume.persistentVolumeClaim) {
      const name = volume.persistentVolumeClaim.claimName;
      const claim = await sources.claim(namespace, name);
      if (!claim) throw new VolumeError(`persistentvolumeclaim "${name}" not found`);
      if (claim.metadata?.deletionTimestamp) throw new VolumeError(`persistentvolumeclaim "${name}" is being deleted`);
      const storage = claimDir(dataDir, namespace, name);
      await fs.mkdir(storage, { recursive: true });
      prepared.set(volume.name, { path: storage, readOnly: volume.persistentVolumeClaim.readOnly ?? false });
    } else if (volume.secret) {
      const name = volume.secret.secretName ?? '';
      const data = await sources.secret(namespace, name);
      if (!data && !volume.secret.optional) throw new VolumeError(`secret "${name}" not found`);
      await writeFiles(dir, data ? projectKeys(data, volume.secret.items, volume.secret.defaultMode ?? 0o644, `secret ${name}`) : []);
      prepared.set(volume.name, { path: dir, readOnly: true });
    } else if (volume.configMap) {
      const name = volume.configMap.name ?? '';
      const data = await sources.configMap(namespace, name);
      if (!data && !volume.configMap.optional) throw new VolumeError(`configmap "${name}" not found`);
      await writeFiles(dir, data ? projectKeys(data, volume.configMap.items, volume.configMap.defaultMode ?? 0o644, `configmap ${name}`) : []);
      prepared.set(volume.name, { path: dir, readOnly: true });
    } else if (volume.downwardAPI) {
      await writeFiles(dir, downwardFiles(pod, volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? 0o644, podIP));
      prepared.set(volume.name, { path: dir, readOnly: true });
    } else if (volume.projected) {
      const mode = volume.projected.defaultMode ?? 0o644;
      const files: ProjectedFile[] = [];
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
          // This node issues no tokens; the file exists so programs that read it find it.
          files.push({ path: source.serviceAccountToken.path, content: Buffer.from(''), mode });
        }
      }
      await writeFiles(dir, files);
      prepared.set(volume.name, { path: dir, readOnly: true });
    } else if (volume.hostPath) {
      const type = volume.hostPath.type ?? '';
      if (type === 'DirectoryOrCreate') await fs.mkdir(volume.hostPath.path, { recursive: true });
      else if (type === 'FileOrCreate') await fs.appendFile(volume.hostPath.path, '');
      try {
        await fs.access(volume.hostPath.path);
      } catch {
        throw new VolumeError(`hostPath type check failed: ${volume.hostPath.path} does not exist`);
      }
      prepared.set(volume.name, { path: volume.hostPath.path, readOnly: false });
    } else {
      throw new VolumeError(`volume "${volume.name}": only emptyDir, persistentVolumeClaim, secret, configMap, downwardAPI, projected and hostPath volumes are supported on this node`);
    }
  }
  return prepared;
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
        await fs.mkdir(source, { recursive: true });
      }
    }
    const isFile = (await fs.stat(source)).isFile();
    mounts.push({ source, target: mount.mountPath, readOnly: Boolean(mount.readOnly) || volume.readOnly, kind: isFile ? 'file' : 'dir' });
  }
  return mounts;
}
