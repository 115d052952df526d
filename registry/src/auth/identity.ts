// Who a credential is. A request carries nothing (anonymous), Basic credentials (the push token as
// the password: the administrator; an htpasswd user; a Kubernetes ServiceAccount token as the
// password), or a Bearer token (the push token; a token this registry issued; a ServiceAccount
// token). The identity's name is what logs show and what a registry token's `sub` holds; the
// credential itself is never returned, logged or kept.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Access } from './scope.ts';
import type { RegistryTokens } from './tokens.ts';

export type Identity =
  | { kind: 'admin' }
  | { kind: 'user'; name: string }
  | { kind: 'serviceAccount'; namespace: string; name: string }
  | { kind: 'anonymous' };

export const ADMIN: Identity = { kind: 'admin' };
export const ANONYMOUS: Identity = { kind: 'anonymous' };

const SERVICE_ACCOUNT_PREFIX = 'system:serviceaccount:';

/** `admin`, `user:alice`, `system:serviceaccount:ns:name` (Kubernetes' user name) or `anonymous`. */
export function identityName(identity: Identity): string {
  switch (identity.kind) {
    case 'admin':
      return 'admin';
    case 'anonymous':
      return 'anonymous';
    case 'user':
      return `user:${identity.name}`;
    case 'serviceAccount':
      return `${SERVICE_ACCOUNT_PREFIX}${identity.namespace}:${identity.name}`;
  }
}

/** The inverse of identityName; undefined for anything else. */
export function identityFromName(name: string): Identity | undefined {
  if (name === 'admin') return ADMIN;
  if (name === 'anonymous') return ANONYMOUS;
  if (name.startsWith('user:') && name.length > 'user:'.length) return { kind: 'user', name: name.slice('user:'.length) };
  return serviceAccountFromUsername(name);
}

/** A Kubernetes user name `system:serviceaccount:NS:NAME` as a ServiceAccount identity. */
export function serviceAccountFromUsername(username: string): Identity | undefined {
  if (!username.startsWith(SERVICE_ACCOUNT_PREFIX)) return undefined;
  const [namespace, name, ...rest] = username.slice(SERVICE_ACCOUNT_PREFIX.length).split(':');
  if (!namespace || !name || rest.length) return undefined;
  return { kind: 'serviceAccount', namespace, name };
}

/** What an Authorization header holds. */
export type Credential =
  | { scheme: 'none' }
  | { scheme: 'basic'; username: string; password: string }
  | { scheme: 'bearer'; token: string }
  /** Another scheme, or Basic or Bearer that does not parse. */
  | { scheme: 'unsupported' };

export function parseAuthorization(header: string | undefined): Credential {
  if (header === undefined || header.trim() === '') return { scheme: 'none' };
  const match = /^\s*(\S+)\s+(\S+)\s*$/.exec(header);
  if (!match) return { scheme: 'unsupported' };
  const scheme = match[1]!.toLowerCase();
  const value = match[2]!;
  if (scheme === 'bearer') return { scheme: 'bearer', token: value };
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { scheme: 'unsupported' };
    return { scheme: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return { scheme: 'unsupported' };
}

/** What a credential proved. A registry token also limits its bearer to the access it names. */
export type Authentication =
  | { ok: true; identity: Identity; access?: Access[] }
  | { ok: false; reason: 'invalid' | 'expired'; message: string };

/** htpasswd users (htpasswd.ts). */
export interface UserDirectory {
  /** 'unknown' when no file names the user. */
  verify(username: string, password: string): Promise<'valid' | 'invalid' | 'unknown'>;
}

/** Kubernetes ServiceAccount tokens (kubernetes-tokens.ts). Throws KubernetesUnavailableError when it cannot tell. */
export interface ServiceAccountVerifier {
  verify(jwt: string): Promise<{ ok: true; identity: Identity } | { ok: false; reason: 'invalid' | 'expired'; message: string }>;
}

export interface AuthenticatorDeps {
  /** The push token (NIXERY_PUSH_TOKEN): the administrator; unset, there is none. */
  adminToken?: string;
  users?: UserDirectory;
  serviceAccounts?: ServiceAccountVerifier;
  tokens: RegistryTokens;
}

export class Authenticator {
  private readonly deps: AuthenticatorDeps;
  private readonly adminDigest: Buffer | undefined;

  constructor(deps: AuthenticatorDeps) {
    this.deps = deps;
    this.adminDigest = deps.adminToken === undefined ? undefined : sha256(deps.adminToken);
  }

  async authenticate(credential: Credential): Promise<Authentication> {
    switch (credential.scheme) {
      case 'none':
        return { ok: true, identity: ANONYMOUS };
      case 'unsupported':
        return invalid('the Authorization header is neither Basic credentials nor a Bearer token');
      case 'basic':
        return this.basic(credential.username, credential.password);
      case 'bearer':
        return this.bearer(credential.token);
    }
  }

  private async basic(username: string, password: string): Promise<Authentication> {
    if (this.isAdminToken(password)) return { ok: true, identity: ADMIN };
    const user = (await this.deps.users?.verify(username, password)) ?? 'unknown';
    if (user === 'valid') return { ok: true, identity: { kind: 'user', name: username } };
    // A ServiceAccount token as the password, under any user name (conventionally `serviceaccount`).
    if (this.deps.serviceAccounts && looksLikeJwt(password)) return this.deps.serviceAccounts.verify(password);
    return invalid(user === 'invalid' ? `wrong password for user ${JSON.stringify(username)}` : 'unknown user name or password');
  }

  private async bearer(token: string): Promise<Authentication> {
    if (this.isAdminToken(token)) return { ok: true, identity: ADMIN };
    if (!looksLikeJwt(token)) return invalid('the bearer token is not valid');
    if (this.deps.tokens.isRegistryToken(token)) {
      const verified = await this.deps.tokens.verify(token);
      if (!verified.ok) return verified;
      const identity = identityFromName(verified.subject);
      if (!identity) return invalid('the registry token names no identity');
      return { ok: true, identity, access: verified.access };
    }
    if (this.deps.serviceAccounts) return this.deps.serviceAccounts.verify(token);
    return invalid('the bearer token is not valid');
  }

  private isAdminToken(secret: string): boolean {
    // Digests compared, so a length difference leaks nothing either.
    return this.adminDigest !== undefined && timingSafeEqual(sha256(secret), this.adminDigest);
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function invalid(message: string): Authentication {
  return { ok: false, reason: 'invalid', message };
}

/** Three base64url parts: a JWS in compact form. */
export function looksLikeJwt(value: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(value);
}
