// The referrers of the images the registry builds: for each image manifest digest (both the
// Docker and the OCI rendering), the SBOM manifest that refers to it, in
// `built-referrers/<alg>-<hex>`. A built image belongs to no repository (any name may pull it by
// digest), so neither does this index: the referrers API lists it under every name, beside what
// was pushed to that name. Written by the build that made the image, replaced whole (a rebuild
// from the same closure and source writes the same bytes), read by service/manifests.ts.
import type { ReferrerDescriptor } from '../push/manifest-store.ts';
import { isKeyedDigest } from '../push/manifest-store.ts';
import type { StorageBackend } from '../storage/backend.ts';

interface BuiltReferrersDocument {
  manifests: ReferrerDescriptor[];
}

export async function recordBuiltReferrers(storage: StorageBackend, subject: string, referrers: ReferrerDescriptor[]): Promise<void> {
  await storage.putDocument(builtReferrersKey(subject), { manifests: referrers } satisfies BuiltReferrersDocument);
}

/** The referrers the registry made for `subject`; none for a digest it did not build. */
export async function builtReferrers(storage: StorageBackend, subject: string): Promise<ReferrerDescriptor[]> {
  if (!isKeyedDigest(subject)) return [];
  const doc = await storage.getDocument<BuiltReferrersDocument>(builtReferrersKey(subject));
  return Array.isArray(doc?.manifests) ? doc.manifests.filter((m) => m !== null && typeof m === 'object' && typeof m.digest === 'string') : [];
}

function builtReferrersKey(subject: string): string {
  if (!isKeyedDigest(subject)) throw new Error(`no referrers index for digest ${JSON.stringify(subject)}`);
  return `built-referrers/${subject.replace(':', '-')}`;
}
