// Whether the cluster already has what we would apply. The API server adds defaults and fields
// of other managers, so "already applied" means every field we set has our value; lists must
// match element by element, since server-side apply replaces or merges them by key.
export function isSubset(desired: unknown, current: unknown): boolean {
  if (desired === current) return true;
  if (Array.isArray(desired)) {
    return Array.isArray(current) && desired.length === current.length && desired.every((d, i) => isSubset(d, current[i]));
  }
  if (desired !== null && typeof desired === 'object') {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return false;
    const c = current as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) => v === undefined || isSubset(v, c[k]));
  }
  return false;
}
