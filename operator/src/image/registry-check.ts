// Asks the instance's registry whether a build's digest is really there before a NixImage says
// Ready: a termination message is only what some pod wrote, the registry is what pods pull from.
// The manifest must answer by digest, and the tag must name that digest. A registry that wants a
// login (anonymous pulls off) is asked again with a pull token bought with the operator's pull user.
import { buyRegistryToken, exchange, type ExchangeAnswer } from '@nixery/registry/operator-api';

export interface DigestCheckRequest {
  /** `http://host:port` or `https://host:port`: the registry as the operator reaches it. */
  baseUrl: string;
  /** With HTTPS: the CA bundle to trust and the name the certificate must carry. */
  ca?: string;
  servername?: string;
  repository: string;
  tag: string;
  digest: string;
  /** The operator's pull user, asked for only when the registry challenges. */
  credentials?: () => Promise<{ username: string; password: string } | undefined>;
}

/** Not confirmed: what the registry answered (or why it could not be asked), for the condition message. */
export type DigestCheck = { confirmed: true } | { confirmed: false; message: string };

export type DigestVerifier = (request: DigestCheckRequest) => Promise<DigestCheck>;

/** Every manifest type a build pushes under a tag: an image (OCI or Docker) or an index of them. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** Bounds each request: a check that hangs would hold a reconcile worker. */
const TIMEOUT_MS = 5000;

export const verifyDigest: DigestVerifier = async (request) => {
  const { baseUrl, repository, tag, digest } = request;
  let authorization: string | undefined;
  const head = async (reference: string): Promise<DigestCheck> => {
    const url = `${baseUrl}/v2/${repository}/manifests/${reference === digest ? reference : encodeURIComponent(reference)}`;
    let answer = await send(request, 'HEAD', url, { Accept: MANIFEST_ACCEPT, ...(authorization ? { Authorization: authorization } : {}) });
    if (answer.status === 401 && !authorization) {
      const bought = await pullToken(request);
      if (!bought.ok) return { confirmed: false, message: `HEAD ${url} answered 401 and ${bought.message}` };
      authorization = `Bearer ${bought.token}`;
      answer = await send(request, 'HEAD', url, { Accept: MANIFEST_ACCEPT, Authorization: authorization });
    }
    if (answer.status !== 200) return { confirmed: false, message: `HEAD ${url} answered ${answer.status}` };
    const served = answer.headers['docker-content-digest'];
    if (served !== digest) return { confirmed: false, message: `HEAD ${url} answered 200 with Docker-Content-Digest ${typeof served === 'string' ? served : '(none)'}, not ${digest}` };
    return { confirmed: true };
  };
  try {
    const byDigest = await head(digest);
    if (!byDigest.confirmed) return byDigest;
    return await head(tag);
  } catch (error) {
    return { confirmed: false, message: `the registry at ${baseUrl} could not be asked: ${(error as Error).message}` };
  }
};

/** A registry token for `repository:NAME:pull`, bought at /v2/token with the pull user. */
async function pullToken(request: DigestCheckRequest): Promise<{ ok: true; token: string } | { ok: false; message: string }> {
  const credentials = await request.credentials?.();
  if (!credentials) return { ok: false, message: 'the operator has no pull user to log in with' };
  const url = `${request.baseUrl}/v2/token?service=nixery&scope=${encodeURIComponent(`repository:${request.repository}:pull`)}`;
  const bought = await buyRegistryToken(url, credentials.username, credentials.password, options(request));
  if (bought.ok) return bought;
  return { ok: false, message: bought.reason === 'status' ? `GET ${url} answered ${bought.status}` : `GET ${url} answered no token` };
}

/** Each request bounded on its own. */
function options(request: Pick<DigestCheckRequest, 'ca' | 'servername'>) {
  return { signal: AbortSignal.timeout(TIMEOUT_MS), ...(request.ca ? { ca: request.ca } : {}), ...(request.servername ? { servername: request.servername } : {}) };
}

function send(request: Pick<DigestCheckRequest, 'ca' | 'servername'>, method: string, url: string, headers: Record<string, string>): Promise<ExchangeAnswer> {
  return exchange(method, url, headers, options(request));
}
