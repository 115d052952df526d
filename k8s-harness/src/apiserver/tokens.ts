// Service-account tokens: JWTs in the shape kube-apiserver issues for TokenRequests (bound to a
// pod, with the `kubernetes.io` private claims), signed with an EC P-256 key of this server. This
// server verifies them (requests, TokenReview) and publishes the key (`/openid/v1/jwks`) so that
// others can, so the claims and the key id are the real ones.
// With a data directory the key is kept next to the CA, so tokens survive a restart.
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** The issuer and the one audience of the API server (kubeadm's defaults). */
export const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
export const ISSUER = API_AUDIENCE;

export interface ObjectClaim {
  name: string;
  uid: string;
}

export interface ServiceAccountClaims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: ObjectClaim;
    pod?: ObjectClaim;
    secret?: ObjectClaim;
    node?: ObjectClaim;
  };
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export class TokenSigner {
  readonly keyId: string;
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;

  private constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    this.#publicKey = crypto.createPublicKey(privateKey);
    // kube-apiserver's key id: the SHA-256 of the public key's DER encoding
    this.keyId = b64url(crypto.createHash('sha256').update(this.#publicKey.export({ type: 'spki', format: 'der' })).digest());
  }

  /** The key in `<dir>/sa.key`, created there when missing; without a dir, a fresh one. */
  static load(dir?: string): TokenSigner {
    const file = dir ? path.join(dir, 'sa.key') : undefined;
    if (file && fs.existsSync(file)) return new TokenSigner(crypto.createPrivateKey(fs.readFileSync(file)));
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    if (file) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    }
    return new TokenSigner(privateKey);
  }

  sign(claims: ServiceAccountClaims): string {
    const input = `${b64url(JSON.stringify({ alg: 'ES256', kid: this.keyId }))}.${b64url(JSON.stringify(claims))}`;
    const signature = crypto.sign('sha256', Buffer.from(input), { key: this.#privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(signature)}`;
  }

  /** The claims of a token this signer made, else undefined. Expiry and audience are the caller's to check. */
  verify(token: string): ServiceAccountClaims | undefined {
    const checked = this.check(token);
    return 'claims' in checked ? checked.claims : undefined;
  }

  /**
   * The first steps of kube-apiserver's service-account JWT authenticator: a token that is not a
   * JWT of this issuer is not ours (no error: other authenticators may know it); one of this
   * issuer must carry this key's id and a valid signature (upstream's errors otherwise).
   * Expiry, audience and the bound objects are the caller's to check.
   */
  check(token: string): { claims: ServiceAccountClaims } | { error?: string } {
    const parts = token.split('.');
    if (token.trimStart().startsWith('{') || parts.length !== 3) return {};
    const [header, payload, signature] = parts as [string, string, string];
    let claims: ServiceAccountClaims;
    let h: { alg?: unknown; kid?: unknown };
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as ServiceAccountClaims;
      if (claims.iss !== ISSUER) return {};
      h = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: unknown; kid?: unknown };
    } catch {
      return {};
    }
    if (h.kid !== undefined && h.kid !== this.keyId) return { error: 'invalid signature, no keys found' };
    const ok = h.alg === 'ES256' && crypto.verify('sha256', Buffer.from(`${header}.${payload}`), { key: this.#publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
    if (!ok) return { error: 'go-jose/go-jose: error in cryptographic primitive' };
    if (typeof claims.sub !== 'string' || typeof claims['kubernetes.io']?.serviceaccount?.name !== 'string') {
      return { error: 'service account token claims could not be validated due to unexpected private claim' };
    }
    if (!Array.isArray(claims.aud)) claims.aud = typeof claims.aud === 'string' ? [claims.aud] : [];
    return { claims };
  }

  /** The public key as a JSON Web Key, as kube-apiserver publishes it at /openid/v1/jwks. */
  jwk(): Record<string, string> {
    const { kty, crv, x, y } = this.#publicKey.export({ format: 'jwk' });
    return { use: 'sig', kty: String(kty), kid: this.keyId, crv: String(crv), alg: 'ES256', x: String(x), y: String(y) };
  }
}

/** The payload of a JWT without checking anything: for tests and logs. */
export function decodeTokenPayload(token: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
