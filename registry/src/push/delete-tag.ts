// Removing a pushed tag, as the operator does when a NixImage is deleted: the administrator token
// buys a registry token for `repository:NAME:delete` alone at /v2/token, and the DELETE of the
// manifest by tag carries only that. Blobs stay; the tag no longer shadows the package-list name.
import { buyRegistryToken, exchange } from './registry-exchange.ts';

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
  const exchangeOptions = { signal: AbortSignal.timeout(options.timeoutMs ?? 5000), ...(options.ca ? { ca: options.ca } : {}) };
  const tokenUrl = deleteTokenUrl(ref, scheme);
  const issued = await buyRegistryToken(tokenUrl, 'admin', adminToken, exchangeOptions);
  if (!issued.ok) throw new TagDeleteError(tokenUrl, issued.status, issued.reason === 'status' ? issued.body : 'the answer holds no token', 'GET');
  const url = tagUrl(ref, scheme);
  const deleted = await exchange('DELETE', url, { Authorization: `Bearer ${issued.token}` }, exchangeOptions);
  if (deleted.status !== 202 && deleted.status !== 404) throw new TagDeleteError(url, deleted.status, deleted.body);
}
