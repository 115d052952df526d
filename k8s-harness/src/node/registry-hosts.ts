// How the node reaches a registry host, the way containerd's registry `config_path` decides it
// (its "hosts directory", docs/hosts.md): `DIR/<host[:port]>/` (else `DIR/_default/`) holds
// either a `hosts.toml` — `server` (default `https://<host>`), `[host."<url>"]` endpoints tried
// first in order, each with `capabilities`, `ca` (a path or a list; relative to the directory)
// and `skip_verify`; the top level's `ca`/`skip_verify`/`capabilities` belong to `server` — or,
// without one, certificates in Docker's layout (every `*.crt` a CA for `https://<host>`). Read
// anew at each pull, so a CA written while the node runs is used from the next pull on.
import fs from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';

export interface RegistryEndpoint {
  /** `https`, `http`, or undefined when nothing says (no hosts.toml server): the puller probes */
  scheme: 'https' | 'http' | undefined;
  /** `host[:port]` to connect to */
  host: string;
  /** CA files (PEM) to trust besides the system roots */
  caFiles: string[];
  skipVerify: boolean;
  capabilities: string[];
}

export class HostsConfigError extends Error {}

const DEFAULT_CAPABILITIES = ['pull', 'resolve', 'push'];

function list(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new HostsConfigError(`${what} must be a string or a list of strings`);
}

/** Where a path of the node's file system is on this machine (node-root.ts's hostPathOnNode); identity by default. */
export type NodePath = (nodePath: string) => string;

const asWritten: NodePath = (p) => p;

function endpoint(url: string, table: Record<string, unknown>, hostDir: string, where: string, nodePath: NodePath): RegistryEndpoint {
  const match = /^(?:(https?):\/\/)?([^/]+)/.exec(url);
  if (!match) throw new HostsConfigError(`${where}: "${url}" is not a registry URL`);
  const skip = table.skip_verify;
  if (skip !== undefined && typeof skip !== 'boolean') throw new HostsConfigError(`${where}: skip_verify must be true or false`);
  // containerd reads `ca` on the node: an absolute path is the node's, a relative one is in the host's directory.
  const caFiles = list(table.ca, `${where}: ca`).map((ca) => (path.isAbsolute(ca) ? nodePath(ca) : path.join(hostDir, ca)));
  const capabilities = table.capabilities === undefined ? DEFAULT_CAPABILITIES : list(table.capabilities, `${where}: capabilities`);
  return { scheme: (match[1] as 'https' | 'http' | undefined) ?? 'https', host: match[2]!, caFiles, skipVerify: skip === true, capabilities };
}

/** The endpoints a hosts.toml names, in the order containerd tries them: its `[host]` entries, then `server`. */
export function parseHostsToml(text: string, hostDir: string, registry: string, nodePath: NodePath = asWritten): RegistryEndpoint[] {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (error) {
    throw new HostsConfigError(`${path.join(hostDir, 'hosts.toml')}: ${(error as Error).message}`);
  }
  const where = path.join(hostDir, 'hosts.toml');
  const endpoints: RegistryEndpoint[] = [];
  const hosts = doc.host;
  if (hosts !== undefined) {
    if (typeof hosts !== 'object' || hosts === null || Array.isArray(hosts)) throw new HostsConfigError(`${where}: host must be a table of [host."<url>"] entries`);
    for (const [url, table] of Object.entries(hosts as Record<string, unknown>)) {
      if (typeof table !== 'object' || table === null) throw new HostsConfigError(`${where}: [host."${url}"] must be a table`);
      endpoints.push(endpoint(url, table as Record<string, unknown>, hostDir, `${where} [host."${url}"]`, nodePath));
    }
  }
  const server = doc.server;
  if (server !== undefined && typeof server !== 'string') throw new HostsConfigError(`${where}: server must be a string`);
  endpoints.push(endpoint(server ?? `https://${registry}`, doc, hostDir, where, nodePath));
  return endpoints;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * The endpoints for pulling from `registry` (as written in the image reference), most preferred
 * first. Without a certs dir, or without a directory for the host: the host itself, scheme
 * undefined (the puller probes it), no CA of its own.
 */
export async function registryEndpoints(certsDir: string | undefined, registry: string, nodePath: NodePath = asWritten): Promise<RegistryEndpoint[]> {
  const fallback: RegistryEndpoint[] = [{ scheme: undefined, host: registry, caFiles: [], skipVerify: false, capabilities: DEFAULT_CAPABILITIES }];
  if (!certsDir) return fallback;
  let hostDir: string | undefined;
  for (const candidate of [path.join(certsDir, registry), path.join(certsDir, '_default')]) {
    if (await exists(candidate)) {
      hostDir = candidate;
      break;
    }
  }
  if (!hostDir) return fallback;
  const tomlFile = path.join(hostDir, 'hosts.toml');
  const text = await fs.readFile(tomlFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new HostsConfigError(`${tomlFile}: ${error.message}`);
  });
  if (text !== undefined && text.trim() !== '') return parseHostsToml(text, hostDir, registry, nodePath);
  // Docker's certs.d layout: every *.crt is a CA for the registry itself.
  const crts = (await fs.readdir(hostDir)).filter((f) => f.endsWith('.crt')).sort().map((f) => path.join(hostDir, f));
  return [{ ...fallback[0]!, ...(crts.length > 0 ? { scheme: 'https' as const } : {}), caFiles: crts }];
}
