// Pulling with real clients: skopeo copies into an OCI layout, umoci unpacks a root file system.
import path from 'node:path';
import fs from 'node:fs/promises';
import { runOk } from '@nixery/test-support';

export async function skopeoInspect(host: string, reference: string): Promise<Record<string, unknown>> {
  const { stdout } = await runOk('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/${reference}`], { timeoutMs: 300_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

export async function skopeoInspectRaw(host: string, reference: string, what: 'manifest' | 'config'): Promise<Record<string, unknown>> {
  const args = ['inspect', '--tls-verify=false', '--raw', ...(what === 'config' ? ['--config'] : []), `docker://${host}/${reference}`];
  const { stdout } = await runOk('skopeo', args, { timeoutMs: 300_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

/**
 * Copies `reference` from the registry and unpacks it; returns the root file system's path. With
 * `arch`, skopeo takes that architecture's image of an index (`--override-arch`).
 */
export async function pullAndUnpack(host: string, reference: string, workDir: string, options: { arch?: string } = {}): Promise<string> {
  const layout = path.join(workDir, 'layout');
  const bundle = path.join(workDir, 'bundle');
  await fs.mkdir(workDir, { recursive: true });
  const arch = options.arch ? ['--override-arch', options.arch] : [];
  await runOk('skopeo', [...arch, 'copy', '--src-tls-verify=false', `docker://${host}/${reference}`, `oci:${layout}:img`], { timeoutMs: 300_000 });
  await runOk('umoci', ['unpack', '--image', `${layout}:img`, bundle]);
  const rootfs = path.join(bundle, 'rootfs');
  await fs.access(rootfs);
  return rootfs;
}

/** Runs a program inside an unpacked root file system, as a container runtime would (without isolation). */
export async function runInRoot(rootfs: string, argv: string[], env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await runOk('chroot', [rootfs, ...argv], {
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...env },
  });
  return stdout;
}
