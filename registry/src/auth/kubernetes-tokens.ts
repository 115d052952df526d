// Kubernetes ServiceAccount tokens as credentials (NIXERY_K8S_TOKEN_AUDIENCE): a token must carry
// the registry's audience, and is verified one of two ways (NIXERY_K8S_TOKEN_VERIFICATION):
//   tokenreview  the API server's TokenReview (authentication.k8s.io/v1) with spec.audiences: it
//                also checks that the pod or Secret the token is bound to and the ServiceAccount
//                still exist. Results are cached by the token's digest (bounded; until the token
//                expires, at most a minute), so a push of many blobs costs one review.
//   oidc         the API server's OIDC discovery document and JWKS (jose's remote key set):
//                no API call per token, but a deleted ServiceAccount's token stays valid until it
//                expires.
// The API server is reached in-cluster: KUBERNETES_SERVICE_HOST/PORT, with the registry's own
// ServiceAccount token and CA from the mounted directory, read anew for each call since the
// kubelet rotates the token.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { createRemoteJWKSet, customFetch, decodeJwt, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { BoundedMap } from '../cache/ttl-cache.ts';
import { serviceAccountFromUsername, type BeforeCostlyCheck, type Identity, type ServiceAccountVerifier } from './identity.ts';

const REVIEW_CACHE_ENTRIES = 4096;
const MAX_CACHE_MS = 60_000;
/** A refused token is not reviewed again for this long (it may not be worth an API call a request). */
const REFUSAL_CACHE_MS = 10_000;
const API_TIMEOUT_MS = 10_000;
const MAX_ANSWER_BYTES = 1 << 20;

type Verdict = Awaited<ReturnType<ServiceAccountVerifier['verify']>>;

/** The API server could not be asked or did not answer usefully: nothing is known about the token. */
export class KubernetesUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KubernetesUnavailableError';
  }
}

export interface InClusterApiOptions {
  /** `https://host:port` of the API server. */
  server: string;
  /** Holds `token` and `ca.crt` (NIXERY_K8S_SERVICE_ACCOUNT_DIR). */
  serviceAccountDir: string;
  timeoutMs?: number;
}

/** The API server as a pod reaches it: its CA, the pod's ServiceAccount token. */
export class InClusterApi {
  readonly server: URL;
  private readonly options: InClusterApiOptions;

  constructor(options: InClusterApiOptions) {
    this.options = options;
    this.server = new URL(options.server);
  }

  async request(method: 'GET' | 'POST', apiPath: string, body?: unknown, signal?: AbortSignal): Promise<{ status: number; body: Buffer; contentType: string }> {
    const dir = this.options.serviceAccountDir;
    let token: string;
    let ca: Buffer;
    try {
      [token, ca] = await Promise.all([readFile(path.join(dir, 'token'), 'utf8'), readFile(path.join(dir, 'ca.crt'))]);
    } catch (error) {
      throw new KubernetesUnavailableError(`cannot read the registry's ServiceAccount token and CA in ${dir}: ${(error as Error).message}`, { cause: error });
    }
    const url = new URL(apiPath, this.server);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const request = https.request(url, {
        method,
        ca,
        ...(signal ? { signal } : {}),
        headers: {
          Authorization: `Bearer ${token.trim()}`,
          Accept: 'application/json',
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) } : {}),
        },
      });
      request.setTimeout(this.options.timeoutMs ?? API_TIMEOUT_MS, () => request.destroy(new Error(`no answer within ${(this.options.timeoutMs ?? API_TIMEOUT_MS) / 1000} s`)));
      request.on('error', (error) => reject(new KubernetesUnavailableError(`${method} ${url.origin}${url.pathname} failed: ${error.message}`, { cause: error })));
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_ANSWER_BYTES) chunks.push(chunk);
        });
        response.on('error', (error) => reject(new KubernetesUnavailableError(`${method} ${url.pathname}: ${error.message}`, { cause: error })));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks), contentType: String(response.headers['content-type'] ?? '') }));
      });
      request.end(payload);
    });
  }
}

export interface TokenReviewOptions {
  api: InClusterApi;
  audience: string;
  now?: () => number;
}

/** ServiceAccount tokens checked by the API server's TokenReview. */
export class TokenReviewVerifier implements ServiceAccountVerifier {
  private readonly options: TokenReviewOptions;
  private readonly now: () => number;
  private readonly verdicts = new BoundedMap<string, { verdict: Verdict; until: number }>(REVIEW_CACHE_ENTRIES);

  constructor(options: TokenReviewOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** `beforeCostlyCheck` runs before each TokenReview request (not for a cached verdict) and may throw to prevent it. */
  async verify(jwt: string, beforeCostlyCheck?: BeforeCostlyCheck): Promise<Verdict> {
    const expiresAt = expiryOf(jwt);
    if (expiresAt !== undefined && expiresAt <= this.now()) return { ok: false, reason: 'expired', message: 'the ServiceAccount token has expired' };
    const key = createHash('sha256').update(jwt).digest('base64');
    const cached = this.verdicts.get(key);
    if (cached && cached.until > this.now()) return cached.verdict;
    beforeCostlyCheck?.();
    const verdict = await this.review(jwt);
    const keepFor = verdict.ok ? MAX_CACHE_MS : REFUSAL_CACHE_MS;
    this.verdicts.set(key, { verdict, until: Math.min(expiresAt ?? Infinity, this.now() + keepFor) });
    return verdict;
  }

  private async review(jwt: string): Promise<Verdict> {
    const { audience } = this.options;
    const answer = await this.options.api.request('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token: jwt, audiences: [audience] },
    });
    if (answer.status !== 200 && answer.status !== 201) {
      throw new KubernetesUnavailableError(`the TokenReview was refused with HTTP ${answer.status} (does the registry's ServiceAccount have system:auth-delegator?): ${answer.body.toString('utf8').slice(0, 300)}`);
    }
    let status: { authenticated?: unknown; user?: { username?: unknown }; audiences?: unknown; error?: unknown };
    try {
      status = ((JSON.parse(answer.body.toString('utf8')) as { status?: typeof status }).status ?? {});
    } catch (error) {
      throw new KubernetesUnavailableError(`the TokenReview answer is not JSON: ${(error as Error).message}`);
    }
    if (status.authenticated !== true) {
      return { ok: false, reason: 'invalid', message: `the ServiceAccount token was not accepted${typeof status.error === 'string' && status.error ? `: ${status.error}` : ''}` };
    }
    // The API server checked spec.audiences; an answer that does not echo ours is not trusted.
    if (!Array.isArray(status.audiences) || !status.audiences.includes(audience)) {
      return { ok: false, reason: 'invalid', message: `the token is not meant for this registry (audience ${JSON.stringify(audience)})` };
    }
    const identity = typeof status.user?.username === 'string' ? serviceAccountFromUsername(status.user.username) : undefined;
    if (!identity) return { ok: false, reason: 'invalid', message: 'the token belongs to no ServiceAccount' };
    return { ok: true, identity };
  }
}

export interface OidcOptions {
  api: InClusterApi;
  audience: string;
  now?: () => number;
}

/**
 * ServiceAccount tokens checked against the API server's OIDC discovery keys. A check is a local
 * signature verification (jose fetches the key set again at most every 30 s), so it takes no
 * BeforeCostlyCheck: there is nothing a client could make it cost.
 */
export class OidcVerifier implements ServiceAccountVerifier {
  private readonly options: OidcOptions;
  private discovery: Promise<{ issuer: string; keys: JWTVerifyGetKey }> | undefined;

  constructor(options: OidcOptions) {
    this.options = options;
  }

  async verify(jwt: string): Promise<Verdict> {
    const { issuer, keys } = await this.discover();
    try {
      const { payload } = await jwtVerify(jwt, keys, {
        issuer,
        audience: this.options.audience,
        requiredClaims: ['sub', 'exp'],
        ...(this.options.now ? { currentDate: new Date(this.options.now()) } : {}),
      });
      const identity: Identity | undefined = serviceAccountFromUsername(payload.sub!);
      if (!identity) return { ok: false, reason: 'invalid', message: 'the token belongs to no ServiceAccount' };
      return { ok: true, identity };
    } catch (error) {
      if (error instanceof errors.JWTExpired) return { ok: false, reason: 'expired', message: 'the ServiceAccount token has expired' };
      if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
        throw new KubernetesUnavailableError(`the API server's JWKS could not be read: ${error.message}`, { cause: error });
      }
      if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'aud') {
        return { ok: false, reason: 'invalid', message: `the token is not meant for this registry (audience ${JSON.stringify(this.options.audience)})` };
      }
      if (error instanceof errors.JOSEError) return { ok: false, reason: 'invalid', message: `the ServiceAccount token is not valid (${error.code})` };
      if (error instanceof KubernetesUnavailableError) throw error;
      throw new KubernetesUnavailableError(`verifying a ServiceAccount token failed: ${(error as Error).message}`, { cause: error });
    }
  }

  /** The issuer and key set, from the discovery document (asked again after a failure). */
  private discover(): Promise<{ issuer: string; keys: JWTVerifyGetKey }> {
    this.discovery ??= this.readDiscovery().catch((error: unknown) => {
      this.discovery = undefined;
      throw error;
    });
    return this.discovery;
  }

  private async readDiscovery(): Promise<{ issuer: string; keys: JWTVerifyGetKey }> {
    const { api } = this.options;
    const answer = await api.request('GET', '/.well-known/openid-configuration');
    if (answer.status !== 200) throw new KubernetesUnavailableError(`GET /.well-known/openid-configuration answered HTTP ${answer.status}`);
    let document: { issuer?: unknown; jwks_uri?: unknown };
    try {
      document = JSON.parse(answer.body.toString('utf8')) as typeof document;
    } catch (error) {
      throw new KubernetesUnavailableError(`the OIDC discovery document is not JSON: ${(error as Error).message}`);
    }
    if (typeof document.issuer !== 'string' || typeof document.jwks_uri !== 'string') {
      throw new KubernetesUnavailableError('the OIDC discovery document names no issuer or jwks_uri');
    }
    // The issuer's public address need not be reachable from inside the cluster; the API server
    // serves the key set itself at the same path.
    const jwksUrl = new URL(new URL(document.jwks_uri).pathname, api.server);
    const keys = createRemoteJWKSet(jwksUrl, {
      [customFetch]: async (url: string, init: { signal: AbortSignal }) => {
        const reply = await api.request('GET', new URL(url).pathname, undefined, init.signal);
        return new Response(new Uint8Array(reply.body), { status: reply.status, headers: { 'Content-Type': reply.contentType || 'application/json' } });
      },
    });
    return { issuer: document.issuer, keys };
  }
}

/** The token's `exp` in milliseconds, read without verifying (only to bound how long a verdict is kept). */
function expiryOf(jwt: string): number | undefined {
  try {
    const { exp } = decodeJwt(jwt);
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
