// The registry's own tokens: short-lived JWTs (ES256) naming an identity and the repositories and
// actions it was granted, as the distribution token specification has them. Replicas share the
// signing key (NIXERY_TOKEN_KEY_FILE) so any of them accepts a token another issued; without one
// each process makes its own, and its tokens die with it.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { decodeJwt, errors, jwtVerify, SignJWT } from 'jose';
import { DEFAULT_TOKEN_TTL_SECONDS } from '../config/config.ts';
import { ACTIONS, type Access, type Action } from './scope.ts';

export const TOKEN_ISSUER = 'nixery';
export const TOKEN_AUDIENCE = 'nixery';
/** Clocks of replicas may differ a little. */
const CLOCK_TOLERANCE_SECONDS = 5;

export class TokenKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenKeyError';
  }
}

/** A PEM PKCS#8 EC P-256 private key; throws TokenKeyError saying what is wrong with it. */
export function loadTokenKey(pem: string, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new TokenKeyError(`${source}: not a PEM private key (${(error as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new TokenKeyError(`${source}: expected an EC P-256 private key (ES256), got ${key.asymmetricKeyType}${key.asymmetricKeyDetails?.namedCurve ? ` ${key.asymmetricKeyDetails.namedCurve}` : ''}`);
  }
  return key;
}

export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: string;
}

export type VerifiedToken = { ok: true; subject: string; access: Access[] } | { ok: false; reason: 'invalid' | 'expired'; message: string };

export interface RegistryTokensOptions {
  /** The signing key (loadTokenKey); unset: one generated for this process. */
  key?: KeyObject;
  ttlSeconds?: number;
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
}

export class RegistryTokens {
  readonly ttlSeconds: number;
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  private readonly now: () => number;

  constructor(options: RegistryTokensOptions = {}) {
    this.privateKey = options.key ?? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    this.publicKey = createPublicKey(this.privateKey);
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    this.now = options.now ?? Date.now;
  }

  async issue(subject: string, access: readonly Access[]): Promise<IssuedToken> {
    const issuedAt = Math.floor(this.now() / 1000);
    const token = await new SignJWT({ access: access.map((a) => ({ type: a.type, name: a.name, actions: [...a.actions] })) })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(subject)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(issuedAt + this.ttlSeconds)
      .setJti(randomUUID())
      .sign(this.privateKey);
    return { token, expiresIn: this.ttlSeconds, issuedAt: new Date(issuedAt * 1000).toISOString() };
  }

  /** Whether a JWT claims to be one of ours (unverified: only to choose how to verify it). */
  isRegistryToken(jwt: string): boolean {
    try {
      return decodeJwt(jwt).iss === TOKEN_ISSUER;
    } catch {
      return false;
    }
  }

  async verify(jwt: string): Promise<VerifiedToken> {
    try {
      const { payload } = await jwtVerify(jwt, this.publicKey, {
        algorithms: ['ES256'],
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        requiredClaims: ['sub', 'exp', 'iat'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: new Date(this.now()),
      });
      const access = parseAccessClaim(payload.access);
      if (!access) return { ok: false, reason: 'invalid', message: 'the registry token has a malformed access claim' };
      return { ok: true, subject: payload.sub!, access };
    } catch (error) {
      if (error instanceof errors.JWTExpired) return { ok: false, reason: 'expired', message: 'the registry token has expired: get a new one from the realm' };
      if (error instanceof errors.JOSEError) return { ok: false, reason: 'invalid', message: `the registry token is not valid (${error.code})` };
      throw error;
    }
  }
}

function parseAccessClaim(claim: unknown): Access[] | undefined {
  if (!Array.isArray(claim)) return undefined;
  const access: Access[] = [];
  for (const entry of claim) {
    const { type, name, actions } = (entry ?? {}) as { type?: unknown; name?: unknown; actions?: unknown };
    if (type !== 'repository' || typeof name !== 'string' || !Array.isArray(actions)) return undefined;
    access.push({ type, name, actions: actions.filter((a): a is Action => (ACTIONS as readonly unknown[]).includes(a)) });
  }
  return access;
}
