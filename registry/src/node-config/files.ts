// `nixery node-config`'s pure side: which files a node's container runtime needs to pull from an
// instance's registry by its Service's DNS names (containerd's hosts directory, CRI-O's
// registries.conf.d drop-in and its certs.d CA), the marker that makes a file ours, and whether
// containerd's configuration reads the hosts directory at all. No I/O: `sync.ts` writes.
import path from 'node:path';

export interface NodeConfigInputs {
  /** `<namespace>/<name>` of the NixeryInstance: named in every file's marker. */
  instance: string;
  /** `host:port` names pods pull by, e.g. `nixery.team-a.svc.cluster.local:5000`. */
  hosts: readonly string[];
  /** Where the runtime really connects: `http://10.96.0.12:5000` or `https://…`. */
  server: string;
  /** With an https server: the CA bundle (PEM) to trust; undefined until it is there. */
  ca?: string;
  /** containerd's hosts directory as this process sees it (e.g. `/host/etc/containerd/certs.d`). */
  containerdDir?: string;
  /** The same directory as containerd on the node sees it (hosts.toml names its CA by this path). */
  containerdHostDir?: string;
  /** CRI-O's (containers-registries.conf) drop-in directory, e.g. `/host/etc/containers/registries.conf.d`. */
  crioDir?: string;
  /** containers' certs.d (`/etc/containers/certs.d` on the node), for the CA CRI-O trusts. */
  crioCertsDir?: string;
}

export interface DesiredFile {
  path: string;
  content: string;
}

const HOST_PORT = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/;
const INSTANCE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export class NodeConfigUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NodeConfigUsageError';
  }
}

/** `host:port` (a DNS name or a bracketed IPv6 address), as a registry host namespace. */
export function parseRegistryHost(value: string): string {
  if (!HOST_PORT.test(value)) throw new NodeConfigUsageError(`expected host:port, got ${JSON.stringify(value)}`);
  return value;
}

/** `http://host:port` or `https://host:port`, nothing after. */
export function parseServer(value: string): { scheme: 'http' | 'https'; hostPort: string } {
  const match = /^(https?):\/\/([^/]+)$/.exec(value);
  if (!match || !HOST_PORT.test(match[2]!)) throw new NodeConfigUsageError(`expected http(s)://host:port, got ${JSON.stringify(value)}`);
  return { scheme: match[1] as 'http' | 'https', hostPort: match[2]! };
}

export function parseInstance(value: string): string {
  if (!INSTANCE.test(value)) throw new NodeConfigUsageError(`expected <namespace>/<name>, got ${JSON.stringify(value)}`);
  return value;
}

/** The first line of every file this instance's node-config writes; nothing else is ever touched. */
export function marker(instance: string): string {
  return `# written by nixery node-config for ${instance}`;
}

export type Ownership = 'absent' | 'ours' | 'foreign';

/** Whether a file may be written or removed: only one that does not exist or begins with our marker. */
export function ownership(existing: string | undefined, instance: string): Ownership {
  if (existing === undefined) return 'absent';
  return existing.split('\n', 1)[0] === marker(instance) ? 'ours' : 'foreign';
}

/** A TOML basic string (JSON's escapes are TOML's for everything these files hold). */
function tomlString(value: string): string {
  return JSON.stringify(value);
}

/** The CRI-O drop-in's file name: drop-ins are read in lexical order, each `.conf`. */
export function crioDropInName(instance: string): string {
  return `50-nixery-${instance.replace('/', '-')}.conf`;
}

/**
 * Every file the node needs, for these inputs. An https server without its CA yet gives no
 * files: a runtime told to use TLS it cannot verify would fail every pull anyway.
 */
export function desiredFiles(inputs: NodeConfigInputs): DesiredFile[] {
  const { scheme, hostPort: serverHost } = parseServer(inputs.server);
  const tls = scheme === 'https';
  if (tls && !inputs.ca) return [];
  const head = `${marker(inputs.instance)}\n`;
  const files: DesiredFile[] = [];
  const caContent = tls ? `${head}${inputs.ca!.trim()}\n` : '';

  if (inputs.containerdDir) {
    const hostDir = inputs.containerdHostDir ?? inputs.containerdDir;
    for (const host of inputs.hosts) {
      // containerd reads `ca` on the node, so the path is the node's.
      const caOnHost = path.posix.join(hostDir, host, 'ca.crt');
      const caLine = tls ? `ca = ${tomlString(caOnHost)}\n` : '';
      files.push({
        path: path.join(inputs.containerdDir, host, 'hosts.toml'),
        content:
          head +
          `# pods pull ${host}/…; the node's runtime connects to the Service's ClusterIP instead\n` +
          `server = ${tomlString(inputs.server)}\n` +
          caLine +
          `\n[host.${tomlString(inputs.server)}]\n` +
          `  capabilities = ["pull", "resolve"]\n` +
          (tls ? `  ${caLine}` : ''),
      });
      if (tls) files.push({ path: path.join(inputs.containerdDir, host, 'ca.crt'), content: caContent });
    }
  }

  if (inputs.crioDir) {
    const entries = inputs.hosts.map(
      (host) => `[[registry]]\nprefix = ${tomlString(host)}\nlocation = ${tomlString(serverHost)}\ninsecure = ${tls ? 'false' : 'true'}\n`,
    );
    files.push({ path: path.join(inputs.crioDir, crioDropInName(inputs.instance)), content: `${head}\n${entries.join('\n')}` });
    // containers/image looks the CA up by the host it connects to: the location.
    if (tls && inputs.crioCertsDir) files.push({ path: path.join(inputs.crioCertsDir, serverHost, 'ca.crt'), content: caContent });
  }
  return files;
}

export interface ConfigPathVerdict {
  ok: boolean;
  message: string;
}

/**
 * Whether containerd, configured by `configText` (its config.toml), reads hosts.toml files from
 * `hostDir`: a `config_path` (in the CRI plugin's registry section; a list joined by `:`) naming
 * it, or none at all in a version 3 file (containerd 2.x, whose default is
 * `/etc/containerd/certs.d:/etc/docker/certs.d`). Files it imports are not read.
 */
export function checkConfigPath(configText: string, hostDir: string): ConfigPathVerdict {
  const version = /^\s*version\s*=\s*(\d+)/m.exec(configText)?.[1];
  const values = [...configText.matchAll(/^\s*config_path\s*=\s*(?:"([^"]*)"|'([^']*)')/gm)].map((m) => m[1] ?? m[2] ?? '');
  const wanted = path.posix.normalize(hostDir).replace(/\/$/, '');
  const covers = (value: string) => value.split(':').some((entry) => entry && path.posix.normalize(entry).replace(/\/$/, '') === wanted);
  const imports = /^\s*imports\s*=/m.test(configText) ? ' (files it imports were not read)' : '';
  if (values.some(covers)) return { ok: true, message: `containerd's config_path includes ${wanted}` };
  if (values.length > 0) {
    return {
      ok: false,
      message: `containerd's config_path is ${values.map((v) => JSON.stringify(v)).join(', ')}, which does not include ${wanted}: containerd will not read the hosts.toml files written there; add it to config_path in the CRI registry section and restart containerd${imports}`,
    };
  }
  if (version === '3') return { ok: true, message: `a version 3 containerd configuration without config_path: containerd 2.x's default includes ${wanted}` };
  return {
    ok: false,
    message: `containerd's configuration sets no config_path${version ? ` (version ${version})` : ''}: containerd 1.x then reads no hosts.toml; set config_path = "${wanted}" in [plugins."io.containerd.grpc.v1.cri".registry] and restart containerd (containerd 2.x defaults to it: on a node running 2.x this warning is wrong)${imports}`,
  };
}
