// Service-account tokens: JWTs in the shape kube-apiserver issues for TokenRequests (bound to a
// pod, with the `kubernetes.io` private claims), signed with an EC P-256 key of this server. Only
// this server verifies them, but clients and people decode them, so the claims are the real ones.
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
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const [header, payload, signature] = parts as [string, string, string];
    try {
      const h = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: unknown; kid?: unknown };
      if (h.alg !== 'ES256' || h.kid !== this.keyId) return undefined;
      const ok = crypto.verify('sha256', Buffer.from(`${header}.${payload}`), { key: this.#publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
      if (!ok) return undefined;
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as ServiceAccountClaims;
      if (claims.iss !== ISSUER || typeof claims.sub !== 'string' || typeof claims['kubernetes.io']?.serviceaccount?.name !== 'string') return undefined;
      return claims;
    } catch {
      return undefined;
    }
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
