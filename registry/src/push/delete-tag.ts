// Removing a pushed tag, as the operator does when a NixImage is deleted: the administrator token
// buys a registry token for `repository:NAME:delete` alone at /v2/token, and the DELETE of the
// manifest by tag carries only that. Blobs stay; the tag no longer shadows the package-list name.
import http from 'node:http';
import https from 'node:https';

export interface TagReference {
  /** `host:port` of the registry. */
  registry: string;
  name: string;
  tag: string;
}

export interface DeleteTagOptions {
  /** Default http, as in-cluster registries without TLS are reached. */
  scheme?: 'http' | 'https';
  /** PEM certificates to trust for https (the instance's CA bundle); default: the system's roots. */
  ca?: string;
  /** Bounds the token exchange and the DELETE together (default 5 s). */
  timeoutMs?: number;
}

export class TagDeleteError extends Error {
  readonly status: number;
  constructor(url: string, status: number, body: string, method = 'DELETE') {
    super(`${method} ${url} answered ${status}: ${body.slice(0, 500)}`);
    this.name = 'TagDeleteError';
    this.status = status;
  }
}

/** The URL the DELETE goes to. */
export function tagUrl(ref: TagReference, scheme: 'http' | 'https' = 'http'): string {
  return `${scheme}://${ref.registry}/v2/${ref.name}/manifests/${encodeURIComponent(ref.tag)}`;
}

/** The token endpoint's URL for a delete-only token on the repository. */
export function deleteTokenUrl(ref: TagReference, scheme: 'http' | 'https' = 'http'): string {
  return `${scheme}://${ref.registry}/v2/token?service=nixery&scope=${encodeURIComponent(`repository:${ref.name}:delete`)}`;
}

/** Deletes the tag; one already gone (404) is no error. */
export async function deleteTag(ref: TagReference, adminToken: string, options: DeleteTagOptions = {}): Promise<void> {
  const scheme = options.scheme ?? 'http';
  const signal = AbortSignal.timeout(options.timeoutMs ?? 5000);
  const tokenUrl = deleteTokenUrl(ref, scheme);
  const basic = `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}`;
  const issued = await exchange('GET', tokenUrl, { Authorization: basic, Accept: 'application/json' }, options.ca, signal);
  if (issued.status !== 200) throw new TagDeleteError(tokenUrl, issued.status, issued.body, 'GET');
  let token: unknown;
  try {
    token = (JSON.parse(issued.body) as { token?: unknown }).token;
  } catch {
    // handled below
  }
  if (typeof token !== 'string' || token === '') throw new TagDeleteError(tokenUrl, issued.status, 'the answer holds no token', 'GET');
  const url = tagUrl(ref, scheme);
  const deleted = await exchange('DELETE', url, { Authorization: `Bearer ${token}` }, options.ca, signal);
  if (deleted.status !== 202 && deleted.status !== 404) throw new TagDeleteError(url, deleted.status, deleted.body);
}

/** One request with node:http(s), which (unlike fetch) takes a CA to trust. */
function exchange(method: string, url: string, headers: Record<string, string>, ca: string | undefined, signal: AbortSignal): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = (target.protocol === 'https:' ? https : http).request(target, { method, headers, signal, ...(ca ? { ca } : {}) });
    request.on('error', reject);
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= 64 * 1024) chunks.push(chunk);
      });
      response.on('error', reject);
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    request.end();
  });
}
