// Who a credential is. A request carries nothing (anonymous), Basic credentials (the push token as
// the password: the administrator; an htpasswd user; a Kubernetes ServiceAccount token as the
// password), or a Bearer token (the push token; a token this registry issued; a ServiceAccount
// token). The identity's name is what logs show and what a registry token's `sub` holds; the
// credential itself is never returned, logged or kept.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RateLimiter } from '../cache/rate-limiter.ts';
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

/**
 * Called by a verifier right before a check that costs the registry real work (a bcrypt compare,
 * a TokenReview request) and not before one answered from memory; throws
 * CredentialCheckLimitError to stop the check from being made.
 */
export type BeforeCostlyCheck = () => void;

/** htpasswd users (htpasswd.ts). */
export interface UserDirectory {
  /** 'unknown' when no file names the user. */
  verify(username: string, password: string, beforeCostlyCheck?: BeforeCostlyCheck): Promise<'valid' | 'invalid' | 'unknown'>;
}

/** Kubernetes ServiceAccount tokens (kubernetes-tokens.ts). Throws KubernetesUnavailableError when it cannot tell. */
export interface ServiceAccountVerifier {
  verify(jwt: string, beforeCostlyCheck?: BeforeCostlyCheck): Promise<{ ok: true; identity: Identity } | { ok: false; reason: 'invalid' | 'expired'; message: string }>;
}

/**
 * One client made more costly credential checks in the last minute than it may
 * (NIXERY_CLIENT_AUTH_CHECKS_PER_MINUTE): the check was not made, so nothing is known about the
 * credential; the client may try again after `retryAfterSeconds`.
 */
export class CredentialCheckLimitError extends Error {
  readonly client: string;
  readonly perMinute: number;
  readonly retryAfterSeconds: number;
  constructor(client: string, perMinute: number, retryAfterSeconds: number) {
    super(`too many credential checks from ${client}: this registry checks at most ${perMinute} passwords or Kubernetes tokens a minute per client address`);
    this.name = 'CredentialCheckLimitError';
    this.client = client;
    this.perMinute = perMinute;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface AuthenticatorDeps {
  /** The push token (NIXERY_PUSH_TOKEN): the administrator; unset, there is none. */
  adminToken?: string;
  users?: UserDirectory;
  serviceAccounts?: ServiceAccountVerifier;
  tokens: RegistryTokens;
  /**
   * Costly checks (see BeforeCostlyCheck) each client may have made a minute: without it, anyone
   * could keep the event loop busy with bcrypt, or the API server with TokenReviews, by sending
   * wrong passwords or new tokens. Unset: no limit.
   */
  checkLimit?: RateLimiter;
}

export class Authenticator {
  private readonly deps: AuthenticatorDeps;
  private readonly adminDigest: Buffer | undefined;

  constructor(deps: AuthenticatorDeps) {
    this.deps = deps;
    this.adminDigest = deps.adminToken === undefined ? undefined : sha256(deps.adminToken);
  }

  /**
   * `client` is who costly checks are counted against (http/client-address.ts); unset, all such
   * callers share one allowance. Throws CredentialCheckLimitError when the client has none left.
   */
  async authenticate(credential: Credential, client?: string): Promise<Authentication> {
    switch (credential.scheme) {
      case 'none':
        return { ok: true, identity: ANONYMOUS };
      case 'unsupported':
        return invalid('the Authorization header is neither Basic credentials nor a Bearer token');
      case 'basic':
        return this.basic(credential.username, credential.password, this.chargeTo(client ?? 'unknown'));
      case 'bearer':
        return this.bearer(credential.token, this.chargeTo(client ?? 'unknown'));
    }
  }

  private chargeTo(client: string): BeforeCostlyCheck | undefined {
    const limit = this.deps.checkLimit;
    if (!limit) return undefined;
    return () => {
      const decision = limit.take(client);
      if (!decision.allowed) throw new CredentialCheckLimitError(client, limit.perMinute, decision.retryAfterSeconds);
    };
  }

  private async basic(username: string, password: string, beforeCostlyCheck: BeforeCostlyCheck | undefined): Promise<Authentication> {
    if (this.isAdminToken(password)) return { ok: true, identity: ADMIN };
    const user = (await this.deps.users?.verify(username, password, beforeCostlyCheck)) ?? 'unknown';
    if (user === 'valid') return { ok: true, identity: { kind: 'user', name: username } };
    // A ServiceAccount token as the password, under any user name (conventionally `serviceaccount`).
    if (this.deps.serviceAccounts && looksLikeJwt(password)) return this.deps.serviceAccounts.verify(password, beforeCostlyCheck);
    return invalid(user === 'invalid' ? `wrong password for user ${JSON.stringify(username)}` : 'unknown user name or password');
  }

  private async bearer(token: string, beforeCostlyCheck: BeforeCostlyCheck | undefined): Promise<Authentication> {
    if (this.isAdminToken(token)) return { ok: true, identity: ADMIN };
    if (!looksLikeJwt(token)) return invalid('the bearer token is not valid');
    if (this.deps.tokens.isRegistryToken(token)) {
      const verified = await this.deps.tokens.verify(token);
      if (!verified.ok) return verified;
      const identity = identityFromName(verified.subject);
      if (!identity) return invalid('the registry token names no identity');
      return { ok: true, identity, access: verified.access };
    }
    if (this.deps.serviceAccounts) return this.deps.serviceAccounts.verify(token, beforeCostlyCheck);
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
