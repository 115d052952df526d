// A small stand-in for the parts of kube-apiserver the registry uses, over HTTPS with a test CA:
// TokenReview with audiences (answered as kube-apiserver answers it), OIDC discovery and the
// JWKS. It signs ServiceAccount tokens as the API server would, and remembers them so that its
// TokenReview can judge them. The real one, in the test cluster (k8s-harness), serves the same.
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { exportJWK, SignJWT } from 'jose';
import { issueCertificate, makeCertificateAuthority } from '@nixery/test-support';

export const FAKE_ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** The registry's own ServiceAccount token: the only credential the fake API server takes. */
const REGISTRY_SA_TOKEN = 'the-registry-own-serviceaccount-token';

export interface FakeKubernetesApi {
  /** `https://127.0.0.1:port` */
  url: string;
  host: string;
  port: number;
  /** A pod's view: `token` (the registry's ServiceAccount token) and `ca.crt` (the API server's CA). */
  serviceAccountDir: string;
  /** `METHOD path` of every request, in order. */
  requests: string[];
  /** The tokens TokenReviews were asked about, in order. */
  reviewed: string[];
  /** A ServiceAccount token signed by the API server, for these audiences (default: none given → kube's own). */
  serviceAccountToken(namespace: string, name: string, options?: { audiences?: string[]; expiresIn?: number }): Promise<string>;
  close(): Promise<void>;
}

export async function startFakeKubernetesApi(dir: string): Promise<FakeKubernetesApi> {
  const ca = await makeCertificateAuthority(path.join(dir, 'ca'));
  const serving = await issueCertificate(ca, path.join(dir, 'serving'), 'apiserver', { hosts: ['127.0.0.1'] });
  const serviceAccountDir = path.join(dir, 'serviceaccount');
  await fs.mkdir(serviceAccountDir, { recursive: true });
  await fs.writeFile(path.join(serviceAccountDir, 'token'), REGISTRY_SA_TOKEN);
  await fs.writeFile(path.join(serviceAccountDir, 'ca.crt'), ca.cert);

  const { privateKey: signingKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const requests: string[] = [];
  const reviewed: string[] = [];
  // A real API server checks a token cryptographically and that its ServiceAccount exists; this one remembers what it signed.
  const issued = new Map<string, { username: string; audiences: string[] }>();
  const server = https.createServer({ cert: serving.cert, key: serving.key }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url}`);
      const json = (status: number, value: unknown) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(value));
      if (req.headers.authorization !== `Bearer ${REGISTRY_SA_TOKEN}`) return json(401, { kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 });
      if (req.method === 'POST' && req.url === '/apis/authentication.k8s.io/v1/tokenreviews') {
        const review = JSON.parse(body) as { spec: { token: string; audiences?: string[] } };
        reviewed.push(review.spec.token);
        const known = issued.get(review.spec.token);
        const wanted = review.spec.audiences ?? [];
        const audiences = known ? known.audiences.filter((a) => wanted.length === 0 || wanted.includes(a)) : [];
        const status =
          known && audiences.length
            ? { authenticated: true, user: { username: known.username, uid: 'u-1', groups: ['system:serviceaccounts'] }, audiences }
            : { authenticated: false, error: known ? `token audiences ${JSON.stringify(known.audiences)} is invalid for the target audiences ${JSON.stringify(wanted)}` : 'invalid bearer token' };
        return json(201, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: review.spec, status });
      }
      if (req.url === '/.well-known/openid-configuration') {
        // As a cluster with a public issuer answers: the key set's URL is the issuer's, not the API server's.
        return json(200, { issuer: FAKE_ISSUER, jwks_uri: 'https://issuer.example.invalid/openid/v1/jwks', id_token_signing_alg_values_supported: ['ES256'] });
      }
      if (req.url === '/openid/v1/jwks') return json(200, { keys: [jwk] });
      json(404, { kind: 'Status', code: 404 });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `https://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    serviceAccountDir,
    requests,
    reviewed,
    async serviceAccountToken(namespace, name, options = {}) {
      const audiences = options.audiences ?? ['https://kubernetes.default.svc.cluster.local'];
      const now = Math.floor(Date.now() / 1000);
      const token = await new SignJWT({ 'kubernetes.io': { namespace, serviceaccount: { name } } })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(FAKE_ISSUER)
        .setAudience(audiences)
        .setSubject(`system:serviceaccount:${namespace}:${name}`)
        .setIssuedAt(now)
        .setExpirationTime(now + (options.expiresIn ?? 600))
        .sign(signingKey);
      issued.set(token, { username: `system:serviceaccount:${namespace}:${name}`, audiences });
      return token;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
