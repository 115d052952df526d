// Pulling a registry image for real: skopeo copies it into an OCI layout, umoci unpacks its root
// file system once per manifest digest, and the image config supplies ENTRYPOINT/CMD/Env/WorkingDir/User.
// Which endpoint, which CA and whether TLS at all follow containerd's hosts directory
// (registry-hosts.ts). Lenient (`strictNodePulls: false`): Service names resolve to the Service's
// address and an endpoint nothing describes is probed (TLS verified, or plain HTTP). Strict
// (`strict`, the cluster's strictNodePulls, its default): as a containerd node, hosts resolved only by this
// machine's resolver and plain HTTP only for localhost or `http://` endpoints (node-pull.ts);
// credentials are the pod's pull secrets (pull-secrets.ts), tried one after another as the
// kubelet does, each given to every endpoint of the image's host as containerd does (a pull
// Secret's credential names no server), handed to skopeo in an auth file that exists only for that copy.
import { createHash, randomBytes } from 'node:crypto';
import dns from 'node:dns/promises';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { execFile } from '@nixery/test-support';
import { repositoryAndVersion, type RegistryReference } from './images.ts';
import { credentialForEndpoint, criAuthConfig, type RegistryCredential } from './pull-secrets.ts';
import { lookupFailure, nameToResolve, nodeTransport, unreachableMessage } from './node-pull.ts';
import { HostsConfigError, registryEndpoints, type NodePath, type RegistryEndpoint } from './registry-hosts.ts';

export interface PulledImage {
  /** the unpacked root file system (read-only: containers get an overlay on it) */
  rootfs: string;
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  workingDir?: string;
  /** the config's `User` (`uid`, `uid:gid`, `name`, `name:group`), when it has one */
  user?: string;
  /** `<registry>/<repository>@<manifest digest>`, as the runtime reports imageID */
  imageID: string;
}

export class PullError extends Error {}

/** The fields of an OCI image config's `config` this node uses. */
interface ImageConfig {
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  User?: string;
}

/** Where a registry host is reached from this node, or an error saying why it cannot be. */
export type HostResolver = (registry: string) => string | PullError;

/** Whether an endpoint answers a TLS ClientHello as a TLS server (else: plain HTTP). Nothing is verified here: skopeo verifies. */
export function speaksTls(address: string, servername: string | undefined, timeoutMs = 5000): Promise<boolean> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(colon + 1));
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ...(servername && net.isIP(servername) === 0 ? { servername } : {}) });
    const done = (answer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    // No answer in time: assume TLS, so that the pull is verified.
    const timer = setTimeout(() => done(true), timeoutMs);
    socket.once('secureConnect', () => done(true));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      // A plain HTTP server answers the ClientHello with "HTTP/1.1 400": not a TLS record.
      done(!(error.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long|http request/i.test(error.message)));
    });
  });
}

/** `host[:port]` → the host name, without brackets. */
function hostName(hostPort: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(hostPort);
  if (m) return m[1]!;
  const colon = hostPort.lastIndexOf(':');
  return colon > 0 && hostPort.indexOf(':') === colon ? hostPort.slice(0, colon) : hostPort;
}

function run(command: string, args: string[], timeoutMs: number): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(Object.assign(error, { stderr: String(stderr) }));
      else resolve({ stdout: String(stdout) });
    });
  });
}

/** The most useful line of a skopeo failure: its last non-empty line, minus the log prefix. */
export function pullFailure(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const last = lines.at(-1) ?? 'pull failed';
  const match = /msg="(.*)"$/.exec(last);
  return (match ? match[1]! : last).replaceAll('\\"', '"');
}

interface Descriptor {
  digest: string;
  mediaType?: string;
}

/**
 * Whether a cluster's node pulls as a containerd node does (node-pull.ts) unless told otherwise:
 * yes, so that a suite pulling by a Service name configures the node as a real cluster must
 * (hosts.toml, e.g. the operator's spec.nodeConfig). `--no-strict-node-pulls` opts out.
 */
export const DEFAULT_STRICT_NODE_PULLS = true;

/** The node's own resolver (/etc/hosts and DNS of this machine): resolves or throws getaddrinfo's error. */
export type NodeLookup = (hostname: string) => Promise<void>;

export const systemLookup: NodeLookup = async (hostname) => {
  await dns.lookup(hostname, { all: true });
};

export interface PullerOptions {
  /** containerd's hosts directory (`--certs-dir`): `<dir>/<host:port>/hosts.toml` or `ca.crt`, read at each pull */
  certsDir?: string;
  /**
   * Pull as a containerd node: hosts resolved only by the node's own resolver (no Service names),
   * plain HTTP only for localhost or `http://` endpoints of hosts.toml (node-pull.ts). Default
   * false: Service names resolve, and an endpoint nothing describes is probed.
   */
  strict?: boolean;
  /** the node's resolver, for strict pulls; default: this machine's (getaddrinfo) */
  lookup?: NodeLookup;
  /**
   * Where a path of the node's file system is on this machine (hostPath mapping, node-root.ts), for
   * absolute `ca` paths in hosts.toml. Lenient pulls fall back to the path as written when nothing
   * is at the mapped one; strict pulls do not.
   */
  nodePath?: NodePath;
}

export class Puller {
  readonly #dir: string;
  readonly #resolve: HostResolver;
  readonly #certsDir: string | undefined;
  readonly #strict: boolean;
  readonly #lookup: NodeLookup;
  readonly #nodePath: NodePath;
  readonly #inFlight = new Map<string, Promise<PulledImage>>();

  constructor(dataDir: string, resolve: HostResolver, options: PullerOptions = {}) {
    this.#dir = path.join(dataDir, 'images');
    this.#resolve = resolve;
    this.#certsDir = options.certsDir;
    this.#strict = options.strict ?? false;
    this.#lookup = options.lookup ?? systemLookup;
    const nodePath = options.nodePath ?? ((p: string) => p);
    this.#nodePath = this.#strict ? nodePath : (p) => (fsSync.existsSync(nodePath(p)) ? nodePath(p) : p);
  }

  /**
   * Pulls (or, under IfNotPresent, reuses) an image; concurrent pulls of one reference with the
   * same credentials share the work. `credentials` are tried in order (none: anonymous).
   */
  pull(image: string, reference: RegistryReference, policy: string, credentials: readonly RegistryCredential[] = []): Promise<PulledImage> {
    const who = createHash('sha256').update(JSON.stringify(credentials)).digest('hex');
    const key = `${image}|${policy}|${who}`;
    const existing = this.#inFlight.get(key);
    if (existing) return existing;
    const work = this.#pull(image, reference, policy, credentials).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, work);
    return work;
  }

  async #pull(image: string, reference: RegistryReference, policy: string, credentials: readonly RegistryCredential[]): Promise<PulledImage> {
    const layout = path.join(this.#dir, 'layouts', createHash('sha256').update(image).digest('hex').slice(0, 32));
    const present = await this.#manifestDigest(layout).catch(() => undefined);
    if (policy === 'Never' && !present) {
      throw new PullError(`Container image "${image}" is not present with pull policy of Never`);
    }
    if (policy === 'Always' || !present) {
      await fs.mkdir(layout, { recursive: true });
      await this.#fetch(image, reference, layout, credentials);
    }
    const digest = await this.#manifestDigest(layout);
    const rootfs = await this.#unpack(layout, digest);
    const config = await this.#config(layout, digest);
    const env: Record<string, string> = {};
    for (const entry of config.Env ?? []) {
      const eq = entry.indexOf('=');
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    const pulled: PulledImage = {
      rootfs,
      entrypoint: config.Entrypoint ?? [],
      cmd: config.Cmd ?? [],
      env,
      imageID: `${reference.registry}/${reference.repository}@${digest}`,
    };
    if (config.WorkingDir) pulled.workingDir = config.WorkingDir;
    if (config.User) pulled.user = config.User;
    return pulled;
  }

  /**
   * The kubelet's loop over the pod's credentials (each a try of its own; all failing: their
   * errors together, as utilerrors.NewAggregate writes them), each through containerd's
   * endpoints for the host in order (the first error counts).
   */
  async #fetch(image: string, reference: RegistryReference, layout: string, credentials: readonly RegistryCredential[]): Promise<void> {
    let endpoints: RegistryEndpoint[];
    try {
      endpoints = await registryEndpoints(this.#certsDir, reference.registry, this.#nodePath);
    } catch (error) {
      throw new PullError(error instanceof HostsConfigError ? error.message : String(error));
    }
    const wanted = reference.digest ? 'pull' : 'resolve';
    endpoints = endpoints.filter((e) => e.capabilities.includes('pull') && e.capabilities.includes(wanted));
    if (endpoints.length === 0) throw new PullError(`no host of registry ${reference.registry} is configured to ${wanted} images`);
    const errors: string[] = [];
    for (const credential of credentials.length > 0 ? credentials : [undefined]) {
      let first: string | undefined;
      // As containerd: every endpoint of the host (mirrors too) gets the credential, which names no server.
      const auth = credential ? criAuthConfig(credential) : undefined;
      for (const endpoint of endpoints) {
        try {
          await this.#copy(image, endpoint, reference, layout, credentialForEndpoint(auth, endpoint.host));
          return;
        } catch (error) {
          first ??= error instanceof Error ? error.message : String(error);
        }
      }
      errors.push(first ?? 'pull failed');
    }
    throw new PullError(errors.length === 1 ? errors[0]! : `[${errors.join(', ')}]`);
  }

  /** One `skopeo copy` from one endpoint, with one credential or none. */
  async #copy(image: string, endpoint: RegistryEndpoint, reference: RegistryReference, layout: string, credential: { username: string; password: string } | undefined): Promise<void> {
    const name = hostName(endpoint.host);
    let address: string;
    let tlsOn: boolean;
    let skipVerify = endpoint.skipVerify;
    if (this.#strict) {
      // As a containerd node: the machine's resolver only (skopeo then connects by that name), and
      // the scheme containerd's ConfigureHosts picks.
      const transport = nodeTransport(endpoint);
      const lookupName = nameToResolve(endpoint);
      if (lookupName !== undefined) {
        try {
          await this.#lookup(lookupName);
        } catch (error) {
          throw new PullError(unreachableMessage(image, reference, endpoint, transport, lookupFailure(lookupName, error as NodeJS.ErrnoException)));
        }
      }
      address = endpoint.host;
      tlsOn = transport.mode === 'tls' || (transport.mode === 'fallback' && (await speaksTls(address, name)));
      skipVerify = transport.skipVerify;
    } else {
      const resolved = this.#resolve(endpoint.host);
      if (resolved instanceof PullError) throw resolved;
      address = resolved;
      tlsOn = endpoint.scheme === 'https' || (endpoint.scheme === undefined && (await speaksTls(address, name)));
    }
    const scratch = path.join(this.#dir, 'tmp', randomBytes(8).toString('hex'));
    await fs.mkdir(scratch, { recursive: true, mode: 0o700 });
    try {
      const args = ['copy', '--quiet'];
      if (!tlsOn || skipVerify) {
        // Plain HTTP (probed or configured), or TLS the configuration says not to verify.
        args.push('--src-tls-verify=false');
      } else {
        args.push('--src-tls-verify=true');
        if (endpoint.caFiles.length > 0) {
          const pems: string[] = [];
          for (const file of endpoint.caFiles) {
            try {
              pems.push(await fs.readFile(file, 'utf8'));
            } catch (error) {
              throw new PullError(`failed to load CA file ${file} for ${endpoint.host}: ${(error as Error).message}`);
            }
          }
          const certDir = path.join(scratch, 'certs');
          await fs.mkdir(certDir);
          await fs.writeFile(path.join(certDir, 'ca.crt'), pems.join('\n'));
          args.push('--src-cert-dir', certDir);
        }
      }
      // The registry known by a name only this node resolves (a Service): skopeo runs in a mount
      // namespace of its own whose /etc/hosts names it, so that it connects to the Service's
      // address and still verifies the name the certificate was made for. A twin address (a
      // ClusterIP outside 127/8) or another port can only be reached by its address.
      let source = endpoint.host;
      let hostsFile: string | undefined;
      if (address !== endpoint.host) {
        const port = (a: string) => a.slice(a.lastIndexOf(':') + 1);
        if (net.isIP(name) !== 0 || port(address) !== port(endpoint.host)) source = address;
        else {
          hostsFile = path.join(scratch, 'hosts');
          await fs.writeFile(hostsFile, `127.0.0.1\tlocalhost\n::1\tlocalhost\n${address.slice(0, address.lastIndexOf(':'))}\t${name}\n`);
        }
      }
      if (credential) {
        const authfile = path.join(scratch, 'auth.json');
        const auth = Buffer.from(`${credential.username}:${credential.password}`).toString('base64');
        await fs.writeFile(authfile, JSON.stringify({ auths: { [source]: { auth } } }), { mode: 0o600 });
        args.push('--src-authfile', authfile);
      }
      args.push(`docker://${source}/${repositoryAndVersion(reference)}`, `oci:${layout}:img`);
      const argv: [string, string[]] = hostsFile
        ? ['unshare', ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hostsFile, 'skopeo', ...args]]
        : ['skopeo', args];
      try {
        await run(argv[0], argv[1], 600_000);
      } catch (error) {
        const e = error as Error & { stderr?: string; code?: unknown };
        if (e.code === 'ENOENT') throw new PullError(`${argv[0]} is not installed on this node (scripts/setup.sh installs it)`);
        throw new PullError(pullFailure(e.stderr ?? e.message));
      }
    } finally {
      await fs.rm(scratch, { recursive: true, force: true });
    }
  }

  async #manifestDigest(layout: string): Promise<string> {
    const index = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')) as {
      manifests?: Array<Descriptor & { annotations?: Record<string, string> }>;
    };
    const manifest = index.manifests?.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'img');
    if (!manifest) throw new PullError('the pulled image has no manifest');
    return manifest.digest;
  }

  async #blob(layout: string, digest: string): Promise<unknown> {
    const [algorithm, hex] = digest.split(':');
    return JSON.parse(await fs.readFile(path.join(layout, 'blobs', algorithm ?? 'sha256', hex ?? ''), 'utf8'));
  }

  async #config(layout: string, manifestDigest: string): Promise<ImageConfig> {
    const manifest = (await this.#blob(layout, manifestDigest)) as { config?: Descriptor };
    if (!manifest.config) throw new PullError('the image manifest names no config');
    const config = (await this.#blob(layout, manifest.config.digest)) as { config?: Record<string, unknown> };
    return (config.config ?? {}) as ImageConfig;
  }

  /** One unpacked root per manifest digest, made under a temporary name and renamed when complete. */
  async #unpack(layout: string, digest: string): Promise<string> {
    const bundle = path.join(this.#dir, 'unpacked', digest.replace(':', '-'));
    const rootfs = path.join(bundle, 'rootfs');
    try {
      await fs.access(rootfs);
      return rootfs;
    } catch {
      // not yet
    }
    await fs.mkdir(path.dirname(bundle), { recursive: true });
    const staging = `${bundle}.tmp-${process.pid}-${Date.now()}`;
    try {
      // Only the root file system: `umoci unpack` would also write a runtime config.json, which
      // resolves the config's User in the image's passwd file and fails the pull for a name it
      // lacks — a runtime fails that container at creation instead (identity.ts).
      await fs.mkdir(staging);
      await run('umoci', ['raw', 'unpack', '--image', `${layout}:img`, path.join(staging, 'rootfs')], 600_000);
      await fs.rename(staging, bundle);
    } catch (error) {
      await fs.rm(staging, { recursive: true, force: true });
      try {
        await fs.access(rootfs);
        return rootfs;
      } catch {
        const e = error as Error & { stderr?: string };
        throw new PullError(`unpacking the image failed: ${pullFailure(e.stderr ?? e.message)}`);
      }
    }
    return rootfs;
  }
}
