// Two NixImages claiming the same <name>:<tag> on one instance: the earlier claim wins (by
// creation time, then name, so every replica and restart decides the same way).
import type { NixImage } from '../api/types.ts';
import { repositoryName } from './desired-job.ts';

export function conflictingClaim(image: NixImage, all: readonly NixImage[]): string | undefined {
  const key = claimKey(image);
  const rivals = all.filter((other) => other.metadata.namespace === image.metadata.namespace && !other.metadata.deletionTimestamp && claimKey(other) === key);
  const first = rivals.sort(byClaimOrder)[0];
  return first && first.metadata.name !== image.metadata.name ? first.metadata.name : undefined;
}

function claimKey(image: NixImage): string {
  return `${image.spec.instanceRef.name}\n${repositoryName(image)}\n${image.spec.tag}`;
}

function byClaimOrder(a: NixImage, b: NixImage): number {
  const ta = new Date(a.metadata.creationTimestamp ?? 0).getTime();
  const tb = new Date(b.metadata.creationTimestamp ?? 0).getTime();
  if (ta !== tb) return ta - tb;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}
