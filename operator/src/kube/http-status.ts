// The HTTP status behind a failed API call. @kubernetes/client-node puts it in more than one place:
// the generated clients throw ApiException with `code`, a failed watch sets `statusCode`, and
// errors shaped after older clients carry a `response`.
export function statusOf(error: unknown): number | undefined {
  const e = error as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  for (const candidate of [e.code, e.statusCode, e.response?.statusCode]) if (typeof candidate === 'number') return candidate;
  return undefined;
}
