// How a container runs the registry's commands, for whoever deploys it (the operator):
// the command lines, the environment in a stable order, and where mounted secrets are read.
// The CLI (cli/main.ts) is the other side of these argv lists; the operator's end-to-end suites
// run them for real.
import { renderEnvironment, type RegistrySettings } from '../config/config.ts';
import type { Platform } from '../image/platform.ts';
import type { ImageConfigOverrides } from '../oci/image.ts';

/** Where a registry or build container finds the push-token Secret's files. */
export const PUSH_TOKEN_MOUNT = '/var/run/secrets/nixery/push';
/** The registry's serving certificate, a `kubernetes.io/tls` Secret: `tls.crt`, `tls.key` (NIXERY_TLS_CERT_FILE, _KEY_FILE). */
export const TLS_MOUNT = '/var/run/secrets/nixery/tls';
/** The CA that signed it, `ca.crt`, for a build Job's push (`--push-ca-file`). */
export const CA_MOUNT = '/var/run/secrets/nixery/ca';
/** The user's htpasswd Secret, file `htpasswd` (NIXERY_HTPASSWD_FILE). */
export const HTPASSWD_MOUNT = '/var/run/secrets/nixery/htpasswd';
/** The operator's own pull user's htpasswd file, `htpasswd` (added to NIXERY_HTPASSWD_FILE). */
export const PULL_USER_MOUNT = '/var/run/secrets/nixery/pull-user';
/** The access policy ConfigMap, file `policy.json` (NIXERY_AUTH_POLICY_FILE). */
export const POLICY_MOUNT = '/etc/nixery/policy';
/** The token-signing key Secret the replicas share, file `key.pem` (NIXERY_TOKEN_KEY_FILE). */
export const TOKEN_KEY_MOUNT = '/var/run/secrets/nixery/token-key';
/** A build Job's projected ServiceAccount token, file `token` (`--push-identity-token-file`). */
export const IDENTITY_TOKEN_MOUNT = '/var/run/secrets/nixery/identity';

/** The settings as a container's `env`, sorted by name so a rendered object never changes order. */
export function containerEnv(settings: RegistrySettings): { name: string; value: string }[] {
  return Object.entries(renderEnvironment(settings))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => ({ name, value }));
}

/** `nixery serve`, listening on `host` (e.g. `$(POD_IP)`, expanded by the kubelet). */
export function serveArgs(host: string): string[] {
  return ['serve', '--host', host];
}

export interface BuildCommand {
  packages: readonly string[];
  /** The image tag; with a git package source, the branch, tag or commit to build from. */
  tag: string;
  /** `host:port/name:tag` to push the image to, with the push token or `pushIdentityTokenFile`. */
  push?: string;
  /** How to reach `push`'s registry; unset: the CLI's default, http. */
  pushScheme?: 'http' | 'https';
  /** With `pushScheme: 'https'`: the CA bundle to trust (e.g. `${CA_MOUNT}/ca.crt`). */
  pushCaFile?: string;
  /** A projected ServiceAccount token to push with instead of the push token (e.g. `${IDENTITY_TOKEN_MOUNT}/token`). */
  pushIdentityTokenFile?: string;
  /** Where the summary goes, e.g. `/dev/termination-log`. */
  resultFile?: string;
  config?: ImageConfigOverrides;
  /** Several: an image per platform and their image index under the tag; unset: the machine's architecture. */
  platforms?: readonly Platform[];
}

/** `nixery build`. */
export function buildArgs(command: BuildCommand): string[] {
  return [
    'build',
    '--packages',
    command.packages.join(','),
    '--tag',
    command.tag,
    ...(command.push ? ['--push', command.push] : []),
    ...(command.push && command.pushScheme ? ['--push-scheme', command.pushScheme] : []),
    ...(command.push && command.pushCaFile ? ['--push-ca-file', command.pushCaFile] : []),
    ...(command.push && command.pushIdentityTokenFile ? ['--push-identity-token-file', command.pushIdentityTokenFile] : []),
    ...(command.resultFile ? ['--result-file', command.resultFile] : []),
    ...(command.config ? ['--config-json', JSON.stringify(command.config)] : []),
    ...(command.platforms?.length ? ['--platforms', command.platforms.join(',')] : []),
  ];
}

/** `nixery forward`: TCP from `listen` to `target`, both `host:port`. */
export function forwardArgs(listen: string, target: string): string[] {
  return ['forward', '--listen', listen, '--target', target];
}

export interface NodeConfigCommand {
  /** `<namespace>/<name>`: the marker in every file it writes. */
  instance: string;
  /** The `host:port` names pods pull by. */
  hosts: readonly string[];
  /** `http(s)://<ClusterIP>:<port>`: where the node's runtime connects instead. */
  server: string;
  /** With https: the CA bundle file (e.g. `${CA_MOUNT}/ca.crt`). */
  caFile?: string;
  /** containerd's hosts directory as mounted, and as the node sees it. */
  containerdDir?: string;
  containerdHostDir?: string;
  /** containerd's config.toml as mounted, checked for a config_path covering the hosts directory. */
  containerdConfig?: string;
  /** CRI-O's registries.conf.d and /etc/containers/certs.d, as mounted. */
  crioDir?: string;
  crioCertsDir?: string;
  /** `host:port` of the readiness endpoint (`/readyz`), e.g. `$(POD_IP):8090`. */
  readyListen?: string;
}

/** `nixery node-config`: configures a node's container runtime for the registry's DNS names. */
export function nodeConfigArgs(command: NodeConfigCommand): string[] {
  return [
    'node-config',
    '--instance',
    command.instance,
    ...command.hosts.flatMap((host) => ['--host', host]),
    '--server',
    command.server,
    ...(command.caFile ? ['--ca-file', command.caFile] : []),
    ...(command.containerdDir ? ['--containerd-dir', command.containerdDir] : []),
    ...(command.containerdHostDir ? ['--containerd-host-dir', command.containerdHostDir] : []),
    ...(command.containerdConfig ? ['--containerd-config', command.containerdConfig] : []),
    ...(command.crioDir ? ['--crio-dir', command.crioDir] : []),
    ...(command.crioCertsDir ? ['--crio-certs-dir', command.crioCertsDir] : []),
    ...(command.readyListen ? ['--ready-listen', command.readyListen] : []),
  ];
}
