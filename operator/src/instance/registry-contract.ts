// What the registry reads, as the issue-19 contract fixes it (TLS, pull authentication, scoped push
// credentials: its "operator-api" section): the mount paths of the authentication files an instance
// hands its registry and build pods, and the push client's identity-token option. Kept here while
// operator-api does not export them yet; the names and values are the contract's.

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

/** `nixery build --push`'s option for the identity token. */
export function identityTokenArgs(identityTokenFile: string): string[] {
  return ['--push-identity-token-file', identityTokenFile];
}
