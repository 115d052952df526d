// Where `nixery build --push` put blobs before, per target registry: which repositories there hold
// which digests. A later push of an image sharing layers to another repository of the same
// registry mounts them from there (the distribution spec's cross-repository mount) instead of
// uploading them, as Docker and skopeo do from their own records. Kept in the build's storage,
// beside the layers it describes, so it lasts as long as the layer cache does (a NixImage Job's
// storage is its own and starts empty: there `--push-mount-from` names the sources).
//
// The record is a hint: a repository may have lost the blob since, and the registry then answers
// the mount with an upload session, which the push uses. Two pushes writing it at once may lose
// one's entry; that costs an upload later, never a wrong image.
import { createHash } from 'node:crypto';
import { isValidRepositoryName } from '../image/name.ts';
import type { StorageBackend } from '../storage/backend.ts';

/** The record of one registry: its repositories, the most recently pushed first. */
export interface PushRecord {
  registry: string;
  repositories: { name: string; digests: string[] }[];
}

/** Repositories remembered per registry; the oldest falls off. */
export const MAX_REMEMBERED_REPOSITORIES = 16;
/** Digests remembered per repository (an image is at most ~130 blobs: layers, config, SBOM). */
export const MAX_REMEMBERED_DIGESTS = 512;
/** Sources tried for one blob: each refused mount costs a round trip and an upload session. */
export const MAX_MOUNT_ATTEMPTS = 3;

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** The storage document of a registry's record: keyed by a hash, since host:port is not a key segment. */
export function recordKey(registry: string): string {
  return `push-locations/${createHash('sha256').update(registry).digest('hex')}`;
}

/**
 * The repositories to try mounting `digest` from into `target`, in order: those the record says
 * hold it (the most recent push first), then the ones the user named. Never the target itself.
 */
export function mountSources(record: PushRecord | null, target: string, explicit: readonly string[], digest: string): string[] {
  const remembered = (record?.repositories ?? []).filter((r) => r.digests.includes(digest)).map((r) => r.name);
  return [...new Set([...remembered, ...explicit])].filter((name) => name !== target).slice(0, MAX_MOUNT_ATTEMPTS);
}

/** Every repository a push may mount from: the token it buys must be allowed to pull them. */
export function allMountSources(record: PushRecord | null, target: string, explicit: readonly string[], digests: readonly string[]): string[] {
  return [...new Set(digests.flatMap((d) => mountSources(record, target, explicit, d)))];
}

/**
 * The record after a push of `digests` to `name`: that repository first, holding them and, after
 * them, what it held before (the images of an index are pushed one by one; the oldest fall off).
 */
export function withPush(record: PushRecord | null, registry: string, name: string, digests: readonly string[]): PushRecord {
  const before = record?.repositories.find((r) => r.name === name)?.digests ?? [];
  const others = (record?.repositories ?? []).filter((r) => r.name !== name);
  const entry = { name, digests: [...new Set([...digests, ...before])].slice(0, MAX_REMEMBERED_DIGESTS) };
  return { registry, repositories: [entry, ...others].slice(0, MAX_REMEMBERED_REPOSITORIES) };
}

/** A stored record as read, or null when it is not one (written by something else, or damaged). */
export function parseRecord(value: unknown, registry: string): PushRecord | null {
  if (typeof value !== 'object' || value === null) return null;
  const { registry: stored, repositories } = value as { registry?: unknown; repositories?: unknown };
  if (stored !== registry || !Array.isArray(repositories)) return null;
  const valid = repositories.filter(
    (r): r is PushRecord['repositories'][number] =>
      typeof r === 'object' &&
      r !== null &&
      typeof (r as { name?: unknown }).name === 'string' &&
      isValidRepositoryName((r as { name: string }).name) &&
      Array.isArray((r as { digests?: unknown }).digests) &&
      (r as { digests: unknown[] }).digests.every((d) => typeof d === 'string' && DIGEST.test(d)),
  );
  return { registry, repositories: valid.slice(0, MAX_REMEMBERED_REPOSITORIES).map((r) => ({ name: r.name, digests: r.digests.slice(0, MAX_REMEMBERED_DIGESTS) })) };
}

/** The record in storage. */
export class PushLocations {
  private readonly storage: StorageBackend;

  constructor(storage: StorageBackend) {
    this.storage = storage;
  }

  async read(registry: string): Promise<PushRecord | null> {
    return parseRecord(await this.storage.getDocument<unknown>(recordKey(registry)), registry);
  }

  /** Notes a push: read again just before writing, so a record written meanwhile is mostly kept. */
  async remember(registry: string, name: string, digests: readonly string[]): Promise<void> {
    await this.storage.putDocument(recordKey(registry), withPush(await this.read(registry), registry, name, digests));
  }
}
