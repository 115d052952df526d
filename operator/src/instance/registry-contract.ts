// What the registry reads, as the issue-19 contract fixes it (TLS, pull authentication, scoped push
// credentials: its "operator-api" section): the mount paths of the files an instance hands its
// registry and build pods, the environment that names them, and the push client's options. Kept
// here while operator-api does not export them yet; the names and values are the contract's.

/** `tls.crt`, `tls.key`: the serving certificate. */
export const TLS_MOUNT = '/var/run/secrets/nixery/tls';
/** `ca.crt`: the CA a build pod trusts when it pushes over HTTPS. */
export const CA_MOUNT = '/var/run/secrets/nixery/ca';
/** `htpasswd`: the user's htpasswd file. */
export const HTPASSWD_MOUNT = '/var/run/secrets/nixery/htpasswd';
/** `htpasswd`: the operator's pull user. */
export const PULL_USER_MOUNT = '/var/run/secrets/nixery/pull-user';
/** `policy.json`: the access policy. */
export const POLICY_MOUNT = '/etc/nixery/policy';
/** `key.pem`: the key that signs the registry's tokens. */
export const TOKEN_KEY_MOUNT = '/var/run/secrets/nixery/token-key';
/** `token`: a build pod's projected ServiceAccount token. */
export const IDENTITY_TOKEN_MOUNT = '/var/run/secrets/nixery/identity';

/** The registry's settings for authentication, as environment variables. */
export interface AuthSettings {
  anonymousPull: boolean;
  htpasswdFiles: string[];
  authPolicyFile?: string;
  tokenKeyFile?: string;
  k8sTokenAudience?: string;
}

export function authEnvironment(settings: AuthSettings): Record<string, string> {
  const env: Record<string, string> = { NIXERY_ANONYMOUS_PULL: String(settings.anonymousPull) };
  if (settings.htpasswdFiles.length) env.NIXERY_HTPASSWD_FILE = settings.htpasswdFiles.join(',');
  if (settings.authPolicyFile) env.NIXERY_AUTH_POLICY_FILE = settings.authPolicyFile;
  if (settings.tokenKeyFile) env.NIXERY_TOKEN_KEY_FILE = settings.tokenKeyFile;
  if (settings.k8sTokenAudience) env.NIXERY_K8S_TOKEN_AUDIENCE = settings.k8sTokenAudience;
  return env;
}

/** `nixery build --push`'s options for the scheme, the CA and the identity token. */
export function pushArgs(options: { scheme?: 'http' | 'https'; caFile?: string; identityTokenFile?: string }): string[] {
  return [
    ...(options.scheme ? ['--push-scheme', options.scheme] : []),
    ...(options.caFile ? ['--push-ca-file', options.caFile] : []),
    ...(options.identityTokenFile ? ['--push-identity-token-file', options.identityTokenFile] : []),
  ];
}
