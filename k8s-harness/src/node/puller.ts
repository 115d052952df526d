// Pulling a registry image for real: skopeo copies it into an OCI layout, umoci unpacks its root
// file system once per manifest digest, and the image config supplies ENTRYPOINT/CMD/Env/WorkingDir/User.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execFile } from '@nixery/test-support';
import { repositoryAndVersion, type RegistryReference } from './images.ts';

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

export class Puller {
  readonly #dir: string;
  readonly #resolve: HostResolver;
  readonly #inFlight = new Map<string, Promise<PulledImage>>();

  constructor(dataDir: string, resolve: HostResolver) {
    this.#dir = path.join(dataDir, 'images');
    this.#resolve = resolve;
  }

  /** Pulls (or, under IfNotPresent, reuses) an image; concurrent pulls of one reference share the work. */
  pull(image: string, reference: RegistryReference, policy: string): Promise<PulledImage> {
    const key = `${image}|${policy}`;
    const existing = this.#inFlight.get(key);
    if (existing) return existing;
    const work = this.#pull(image, reference, policy).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, work);
    return work;
  }

  async #pull(image: string, reference: RegistryReference, policy: string): Promise<PulledImage> {
    const layout = path.join(this.#dir, 'layouts', createHash('sha256').update(image).digest('hex').slice(0, 32));
    const present = await this.#manifestDigest(layout).catch(() => undefined);
    if (policy === 'Never' && !present) {
      throw new PullError(`Container image "${image}" is not present with pull policy of Never`);
    }
    if (policy === 'Always' || !present) {
      const host = this.#resolve(reference.registry);
      if (host instanceof PullError) throw host;
      await fs.mkdir(layout, { recursive: true });
      try {
        await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${host}/${repositoryAndVersion(reference)}`, `oci:${layout}:img`], 600_000);
      } catch (error) {
        const e = error as Error & { stderr?: string; code?: unknown };
        if (e.code === 'ENOENT') throw new PullError('skopeo is not installed on this node (scripts/setup.sh installs it)');
        throw new PullError(pullFailure(e.stderr ?? e.message));
      }
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
