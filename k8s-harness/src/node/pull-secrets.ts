// A pod's imagePullSecrets as the kubelet reads them (pkg/credentialprovider): a
// `kubernetes.io/dockerconfigjson` Secret's `.dockerconfigjson` (`{"auths": {KEY: ENTRY}}`) or a
// `kubernetes.io/dockercfg` Secret's `.dockercfg` (`{KEY: ENTRY}`) make a keyring; an image's
// credentials are those of every key that matches it (host name parts by glob, the port exactly,
// the key's path a prefix of the image's), the most specific key first. Pure.

export const DOCKER_CONFIG_JSON_TYPE = 'kubernetes.io/dockerconfigjson';
export const DOCKER_CFG_TYPE = 'kubernetes.io/dockercfg';

export interface PullSecret {
  name: string;
  type: string;
  data: Record<string, Buffer>;
}

export interface RegistryCredential {
  /** the key of the docker config it came from, e.g. `registry.ns.svc.cluster.local:443` */
  key: string;
  username: string;
  password: string;
}

export class PullSecretError extends Error {}

interface Entry {
  username?: unknown;
  password?: unknown;
  auth?: unknown;
}

interface SchemelessUrl {
  host: string;
  port: string;
  path: string;
}

/** `host[:port][/path]`, scheme removed, as the kubelet parses keys and images (ParseSchemelessURL). */
function parseSchemeless(value: string): SchemelessUrl | undefined {
  let url: URL;
  try {
    url = new URL(/^https?:\/\//.test(value) ? value : `https://${value}`);
  } catch {
    return undefined;
  }
  // URL drops a scheme's default port; the kubelet compares ports as written.
  const written = /^(?:https?:\/\/)?[^/]*?:(\d+)(?:\/|$)/.exec(value)?.[1];
  return { host: url.hostname, port: written ?? url.port, path: decodeURIComponent(url.pathname === '/' ? '' : url.pathname) };
}

/** filepath.Match for one host name part: `*` any run of characters, `?` one, `[...]` a class. */
function globMatch(pattern: string, value: string): boolean {
  const regex = pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  try {
    return new RegExp(`^${regex}$`).test(value);
  } catch {
    return false;
  }
}

/** The kubelet's URLsMatch: same port, as many host parts each matching its glob, the key's path a prefix. */
export function keyMatches(key: string, image: string): boolean {
  const glob = parseSchemeless(key);
  const target = parseSchemeless(image);
  if (!glob || !target) return false;
  if (glob.port !== target.port) return false;
  const globParts = glob.host.split('.');
  const targetParts = target.host.split('.');
  if (globParts.length !== targetParts.length) return false;
  if (!target.path.startsWith(glob.path)) return false;
  return globParts.every((part, i) => globMatch(part, targetParts[i] ?? ''));
}

/** A key as the keyring stores it: no scheme, no trailing slash, `/v1` dropped (DockerKeyring.Add). */
function normaliseKey(key: string): string {
  const parsed = parseSchemeless(key);
  if (!parsed) return key;
  let p = parsed.path.replace(/\/$/, '');
  if (p === '/v1') p = '';
  return `${parsed.host}${parsed.port ? `:${parsed.port}` : ''}${p}`;
}

function credentialOf(key: string, entry: Entry): RegistryCredential {
  let username = typeof entry.username === 'string' ? entry.username : '';
  let password = typeof entry.password === 'string' ? entry.password : '';
  // As DockerConfigEntry's decoding: `auth` (base64 user:password), when present, is what counts.
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new PullSecretError(`unable to parse auth field, must be formatted as base64(username:password)`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  return { key: normaliseKey(key), username, password };
}

/**
 * The credentials the secrets hold (MakeDockerKeyring): only Secrets of the two docker types
 * count, each by its own key; a document that is not JSON is an error, as upstream.
 */
export function keyringFromSecrets(secrets: readonly PullSecret[]): RegistryCredential[] {
  const credentials: RegistryCredential[] = [];
  for (const secret of secrets) {
    let entries: Record<string, Entry> | undefined;
    try {
      const json = secret.data['.dockerconfigjson'];
      const cfg = secret.data['.dockercfg'];
      if (secret.type === DOCKER_CONFIG_JSON_TYPE && json && json.length > 0) {
        entries = ((JSON.parse(json.toString('utf8')) as { auths?: Record<string, Entry> }).auths ?? {}) as Record<string, Entry>;
      } else if (secret.type === DOCKER_CFG_TYPE && cfg && cfg.length > 0) {
        entries = JSON.parse(cfg.toString('utf8')) as Record<string, Entry>;
      }
    } catch (error) {
      throw new PullSecretError(`invalid image pull secret "${secret.name}": ${(error as Error).message}`);
    }
    for (const [key, entry] of Object.entries(entries ?? {})) credentials.push(credentialOf(key, entry ?? {}));
  }
  return credentials;
}

/** The credentials for an image (`host[:port]/repository[:tag|@digest]`), most specific key first (the keyring's reverse order). */
export function credentialsFor(keyring: readonly RegistryCredential[], image: string): RegistryCredential[] {
  const keys = [...new Set(keyring.map((c) => c.key))].sort().reverse();
  return keys.filter((key) => keyMatches(key, image)).flatMap((key) => keyring.filter((c) => c.key === key));
}

/** The CRI AuthConfig the kubelet sends with a pull: what containerd sees of a credential. */
export interface CriAuthConfig {
  username: string;
  password: string;
  /** empty for pull Secrets: the kubelet's keyring (BasicDockerKeyring.Add) never sets it */
  serverAddress: string;
}

/** A pull Secret's credential as the kubelet hands it to the runtime: its key is not passed on. */
export function criAuthConfig(credential: RegistryCredential): CriAuthConfig {
  return { username: credential.username, password: credential.password, serverAddress: '' };
}

/**
 * containerd CRI's ParseAuth(auth, host), asked for each endpoint of the image's registry host
 * (the host itself and every hosts.toml mirror, e.g. a ClusterIP): the credentials are withheld
 * only when the AuthConfig names a server address whose host differs from the endpoint's. Pull
 * Secrets name none, so their credentials reach every endpoint.
 */
export function credentialForEndpoint(auth: CriAuthConfig | undefined, endpointHost: string): { username: string; password: string } | undefined {
  if (!auth) return undefined;
  if (auth.serverAddress !== '') {
    // Go's url.Parse(...).Host: the authority as written (a default port kept); no scheme, no host.
    const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(auth.serverAddress)?.[1] ?? '';
    if (authority.slice(authority.lastIndexOf('@') + 1) !== endpointHost) return undefined;
  }
  return { username: auth.username, password: auth.password };
}
