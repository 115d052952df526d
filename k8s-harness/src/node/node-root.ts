// hostPath volumes on this node: never the machine's own paths. Every hostPath is mapped below a
// per-node root directory in the agent's data dir (`<dataDir>/node-root/<path>`), except
// containerd's hosts directory `/etc/containerd/certs.d` (and anything below it), which is the
// node's `certsDir` when one is given — the directory the puller reads hosts.toml files from,
// so what a DaemonSet writes there is what the node pulls by. The node root is laid out like a
// containerd 2.x node's: `etc/containerd/config.toml` with the CRI registry's
// `config_path = "/etc/containerd/certs.d"`, `etc/containerd/certs.d/` and an empty
// `etc/containers/registries.conf.d/` (CRI-O's drop-in directory).
//
// The hostPath types are checked as the kubelet's hostpath plugin checks them (checkTypeInternal):
// "" nothing; DirectoryOrCreate/FileOrCreate create what is missing (0755 directories with their
// parents; a 0644 file whose directory must exist); Directory, File, Socket, CharDevice,
// BlockDevice must exist and be one.
import fs from 'node:fs/promises';
import path from 'node:path';

export const CONTAINERD_CERTS_DIR = '/etc/containerd/certs.d';

export interface HostPathRoots {
  /** where `/` of the node is */
  nodeRoot: string;
  /** what `/etc/containerd/certs.d` is, when given (the puller's hosts directory) */
  certsDir?: string;
}

export class HostPathError extends Error {}

/** The directory this node keeps its root in, inside the agent's data directory. */
export function nodeRootDir(dataDir: string): string {
  return path.join(dataDir, 'node-root');
}

/** Where a hostPath is on this machine. The path is normalized first, so `..` cannot leave the node root. */
export function hostPathOnNode(hostPath: string, roots: HostPathRoots): string {
  if (!path.posix.isAbsolute(hostPath)) throw new HostPathError(`hostPath "${hostPath}" is not an absolute path`);
  const normal = path.posix.normalize(hostPath).replace(/(.)\/+$/, '$1');
  if (roots.certsDir && (normal === CONTAINERD_CERTS_DIR || normal.startsWith(CONTAINERD_CERTS_DIR + '/'))) {
    return path.resolve(roots.certsDir, '.' + normal.slice(CONTAINERD_CERTS_DIR.length));
  }
  return path.resolve(roots.nodeRoot, '.' + normal);
}

/** containerd 2.x's configuration as a kubeadm node has it: version 3, the CRI registry reading the hosts directory. */
export const CONTAINERD_CONFIG_TOML = `# nixery-k8s-harness node: containerd 2.x configuration (as on a real node; the harness reads
# registry hosts from config_path, which is the cluster's --certs-dir).
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"

    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = "${CONTAINERD_CERTS_DIR}"

  [plugins.'io.containerd.cri.v1.runtime']
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          SystemdCgroup = true
`;

/** Lays out the node root (idempotent: an existing config.toml is left as it is). */
export async function prepareNodeRoot(roots: HostPathRoots): Promise<void> {
  const etc = path.join(roots.nodeRoot, 'etc');
  await fs.mkdir(path.join(etc, 'containerd'), { recursive: true, mode: 0o755 });
  await fs.mkdir(path.join(etc, 'containers', 'registries.conf.d'), { recursive: true, mode: 0o755 });
  await fs.mkdir(hostPathOnNode(CONTAINERD_CERTS_DIR, roots), { recursive: true, mode: 0o755 });
  await fs.writeFile(path.join(etc, 'containerd', 'config.toml'), CONTAINERD_CONFIG_TOML, { flag: 'wx', mode: 0o644 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
}

type Kind = 'dir' | 'file' | 'socket' | 'char' | 'block' | 'other';

async function kindOf(p: string): Promise<Kind | undefined> {
  try {
    const s = await fs.stat(p);
    return s.isDirectory() ? 'dir' : s.isFile() ? 'file' : s.isSocket() ? 'socket' : s.isCharacterDevice() ? 'char' : s.isBlockDevice() ? 'block' : 'other';
  } catch {
    return undefined;
  }
}

/**
 * The kubelet's hostPath type check on the mapped path `real`; errors name the pod's `shown`
 * path, in upstream's words. Throws HostPathError.
 */
export async function checkHostPathType(real: string, type: string, shown: string): Promise<void> {
  const expect = async (want: Kind, what: string) => {
    if ((await kindOf(real)) !== want) throw new HostPathError(`hostPath type check failed: ${shown} is not ${what}`);
  };
  switch (type) {
    case '':
      return;
    case 'DirectoryOrCreate':
      if ((await kindOf(real)) === undefined) {
        await fs.mkdir(real, { recursive: true, mode: 0o755 });
        return;
      }
      return expect('dir', 'a directory');
    case 'Directory':
      return expect('dir', 'a directory');
    case 'FileOrCreate':
      if ((await kindOf(real)) === undefined) {
        try {
          await (await fs.open(real, 'a', 0o644)).close();
        } catch (error) {
          const e = error as NodeJS.ErrnoException;
          throw new HostPathError(`open ${shown}: ${e.code === 'ENOENT' ? 'no such file or directory' : e.message}`);
        }
        return;
      }
      return expect('file', 'a file');
    case 'File':
      return expect('file', 'a file');
    case 'Socket':
      return expect('socket', 'a socket file');
    case 'CharDevice':
      return expect('char', 'a character device');
    case 'BlockDevice':
      return expect('block', 'a block device');
    default:
      throw new HostPathError(`${type} is an invalid volume type`);
  }
}
