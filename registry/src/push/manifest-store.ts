// Manifests pushed to repositories, as far as deleting them and listing referrers need.
//
// Manifest bytes are content-addressed blobs shared by every repository (and by the images the
// registry builds), so a repository's claim on a pushed manifest is recorded beside them:
// `pushed-manifests/<hex>` lists the repositories a manifest was pushed to. A DELETE by digest
// removes the repository from that list, and the bytes go only when no repository is left.
//
// The referrers API (OCI 1.1) lists, per repository and subject digest, the pushed manifests whose
// `subject` names that digest: `pushed/<name>/_referrers/<alg>-<hex>` holds their descriptors, in
// push order, written before the push is answered. A repository-name component never starts with
// `_`, so `_referrers` (like `_tags`) is no repository's name.
//
// Each document is a read-modify-write, one at a time per document within this process; replicas
// sharing storage can overwrite each other's concurrent change of the same document (as with
// `tags/<name>`): pushes and deletes are rare, authenticated operations.
import type { StorageBackend } from '../storage/backend.ts';

/** A referrer as the referrers API lists it (an OCI descriptor). */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

interface HoldersDocument {
  repositories: string[];
}

interface ReferrersDocument {
  manifests: ReferrerDescriptor[];
}

/** The digests a referrers index is kept for: those a document key can name. */
const KEYED_DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function isKeyedDigest(digest: string): boolean {
  return KEYED_DIGEST.test(digest);
}

export class PushedManifests {
  private readonly storage: StorageBackend;
  private readonly updates = new Map<string, Promise<void>>();

  constructor(storage: StorageBackend) {
    this.storage = storage;
  }

  /** Records that `name` holds the pushed manifest `digest` (sha256). */
  hold(name: string, digest: string): Promise<void> {
    return this.update<HoldersDocument>(holdersKey(digest), (doc) => {
      const repositories = repositoriesOf(doc);
      return repositories.includes(name) ? null : { repositories: [...repositories, name].sort() };
    });
  }

  async holds(name: string, digest: string): Promise<boolean> {
    return repositoriesOf(await this.storage.getDocument<HoldersDocument>(holdersKey(digest))).includes(name);
  }

  /** Drops `name`'s claim on `digest`; resolves to the number of repositories that still hold it. */
  async release(name: string, digest: string): Promise<number> {
    let remaining = 0;
    await this.update<HoldersDocument>(holdersKey(digest), (doc) => {
      const repositories = repositoriesOf(doc).filter((r) => r !== name);
      remaining = repositories.length;
      return repositories.length === 0 ? 'delete' : { repositories };
    });
    return remaining;
  }

  /** Lists `referrer` among the referrers of `subject` in `name` (once; a new push of it replaces it). */
  addReferrer(name: string, subject: string, referrer: ReferrerDescriptor): Promise<void> {
    return this.update<ReferrersDocument>(referrersKey(name, subject), (doc) => ({
      manifests: [...manifestsOf(doc).filter((m) => m.digest !== referrer.digest), referrer],
    }));
  }

  removeReferrer(name: string, subject: string, digest: string): Promise<void> {
    return this.update<ReferrersDocument>(referrersKey(name, subject), (doc) => {
      const manifests = manifestsOf(doc);
      const kept = manifests.filter((m) => m.digest !== digest);
      if (kept.length === manifests.length) return null;
      return kept.length === 0 ? 'delete' : { manifests: kept };
    });
  }

  /** The referrers of `subject` in `name`, in push order; none for a digest no index is kept for. */
  async referrers(name: string, subject: string): Promise<ReferrerDescriptor[]> {
    if (!isKeyedDigest(subject)) return [];
    return manifestsOf(await this.storage.getDocument<ReferrersDocument>(referrersKey(name, subject)));
  }

  /** `change` returns the new document, 'delete', or null for no change. */
  private update<T>(key: string, change: (doc: T | null) => T | 'delete' | null): Promise<void> {
    const previous = this.updates.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      const changed = change(await this.storage.getDocument<T>(key));
      if (changed === 'delete') await this.storage.deleteDocument(key);
      else if (changed !== null) await this.storage.putDocument(key, changed);
    });
    const settled = next.catch(() => {});
    this.updates.set(key, settled);
    void settled.then(() => {
      if (this.updates.get(key) === settled) this.updates.delete(key);
    });
    return next;
  }
}

function holdersKey(digest: string): string {
  if (!isKeyedDigest(digest)) throw new Error(`no pushed-manifest record for digest ${JSON.stringify(digest)}`);
  return `pushed-manifests/${digest.replace(':', '-')}`;
}

function referrersKey(name: string, subject: string): string {
  if (!isKeyedDigest(subject)) throw new Error(`no referrers index for digest ${JSON.stringify(subject)}`);
  return `pushed/${name}/_referrers/${subject.replace(':', '-')}`;
}

function repositoriesOf(doc: HoldersDocument | null): string[] {
  return Array.isArray(doc?.repositories) ? doc.repositories.filter((r): r is string => typeof r === 'string') : [];
}

function manifestsOf(doc: ReferrersDocument | null): ReferrerDescriptor[] {
  return Array.isArray(doc?.manifests) ? doc.manifests.filter((m) => m !== null && typeof m === 'object' && typeof m.digest === 'string') : [];
}
