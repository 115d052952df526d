// Removing a pushed tag, as the operator does when a NixImage is deleted: DELETE of the manifest
// by tag with the push token. Blobs stay; the tag no longer shadows the package-list name.

export interface TagReference {
  /** `host:port` of the registry. */
  registry: string;
  name: string;
  tag: string;
}

export class TagDeleteError extends Error {
  readonly status: number;
  constructor(url: string, status: number, body: string) {
    super(`DELETE ${url} answered ${status}: ${body.slice(0, 500)}`);
    this.name = 'TagDeleteError';
    this.status = status;
  }
}

/** The URL the DELETE goes to; plain HTTP, as in-cluster registries are reached. */
export function tagUrl(ref: TagReference): string {
  return `http://${ref.registry}/v2/${ref.name}/manifests/${encodeURIComponent(ref.tag)}`;
}

/** Deletes the tag; one already gone (404) is no error. Bounded by `timeoutMs`. */
export async function deleteTag(ref: TagReference, pushToken: string, timeoutMs = 5000): Promise<void> {
  const url = tagUrl(ref);
  const response = await fetch(url, {
    method: 'DELETE',
    headers: { Authorization: `Bearer ${pushToken}` },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (response.status !== 202 && response.status !== 404) throw new TagDeleteError(url, response.status, await response.text());
  await response.body?.cancel();
}
