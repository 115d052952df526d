// Small requests to a registry from outside it (the operator deleting a tag, confirming a digest):
// one bounded request with node:http(s), which unlike fetch takes a CA to trust and a name to
// check, and buying a registry token at /v2/token with Basic credentials.
import http from 'node:http';
import https from 'node:https';

export interface ExchangeOptions {
  /** PEM certificates to trust for https; default: the system's roots. */
  ca?: string;
  /** The name the certificate must carry, when the URL names the host otherwise (a ClusterIP). */
  servername?: string;
  signal: AbortSignal;
}

export interface ExchangeAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The first 64 KiB: enough for a token or an error, and no more memory for a hostile answer. */
  body: string;
}

const MAX_BODY = 64 * 1024;

export function exchange(method: string, url: string, headers: Record<string, string>, options: ExchangeOptions): Promise<ExchangeAnswer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = (target.protocol === 'https:' ? https : http).request(target, {
      method,
      headers,
      signal: options.signal,
      ...(options.ca ? { ca: options.ca } : {}),
      ...(options.servername ? { servername: options.servername } : {}),
    });
    request.on('error', reject);
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_BODY) chunks.push(chunk);
      });
      response.on('error', reject);
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.end();
  });
}

/** A bought token, or why not: the endpoint's status and body, or an answer that holds no token. */
export type TokenPurchase = { ok: true; token: string } | { ok: false; status: number; body: string; reason: 'status' | 'no-token' };

/** A registry token from `tokenUrl` (the scope in its query) for Basic `username:password`. */
export async function buyRegistryToken(tokenUrl: string, username: string, password: string, options: ExchangeOptions): Promise<TokenPurchase> {
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const answer = await exchange('GET', tokenUrl, { Authorization: basic, Accept: 'application/json' }, options);
  if (answer.status !== 200) return { ok: false, status: answer.status, body: answer.body, reason: 'status' };
  let token: unknown;
  try {
    token = (JSON.parse(answer.body) as { token?: unknown }).token;
  } catch {
    // Not JSON: no token, as below.
  }
  if (typeof token !== 'string' || token === '') return { ok: false, status: answer.status, body: answer.body, reason: 'no-token' };
  return { ok: true, token };
}
