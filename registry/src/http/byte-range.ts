// The Range header of a blob GET, read as RFC 9110 §14 says. Only one range is ever sent back:
// several disjoint ones are answered with the whole blob, which §14.2 allows (a server may ignore
// Range), and no registry client asks for more than one.

export type RangeAnswer =
  /** 200 with the whole blob: no Range, another unit, a malformed or invalid header, or several ranges. */
  | { kind: 'whole' }
  /** 206 with bytes start..end (inclusive). */
  | { kind: 'partial'; start: number; end: number }
  /** 416 with `Content-Range: bytes *\/size`: well-formed, but no range overlaps the blob. */
  | { kind: 'unsatisfiable' };

const WHOLE: RangeAnswer = { kind: 'whole' };
const RANGES_SPECIFIER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(.*)$/s;
const INT_RANGE = /^(\d+)-(\d*)$/;
const SUFFIX_RANGE = /^-(\d+)$/;

export function resolveRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return WHOLE;
  const specifier = RANGES_SPECIFIER.exec(header.trim());
  // §14.2: a range unit the server does not understand MUST be ignored.
  if (!specifier || specifier[1]!.toLowerCase() !== 'bytes') return WHOLE;
  const satisfiable: { start: number; end: number }[] = [];
  let specs = 0;
  for (const element of specifier[2]!.split(',')) {
    const spec = element.trim();
    if (spec === '') continue; // §5.6.1.2: empty list elements are ignored
    specs++;
    const int = INT_RANGE.exec(spec);
    if (int) {
      const first = Number(int[1]);
      const last = int[2] === '' ? undefined : Number(int[2]);
      // §14.1.1: last-pos before first-pos makes the whole header invalid; invalid ranges may be ignored.
      if (last !== undefined && last < first) return WHOLE;
      if (first < size) satisfiable.push({ start: first, end: Math.min(last ?? size - 1, size - 1) });
      continue;
    }
    const suffix = SUFFIX_RANGE.exec(spec);
    if (!suffix) return WHOLE;
    const length = Number(suffix[1]);
    // §14.1.2: a suffix longer than the blob means all of it; a zero-length suffix matches nothing.
    if (length > 0 && size > 0) satisfiable.push({ start: Math.max(0, size - length), end: size - 1 });
  }
  if (specs === 0) return WHOLE;
  if (satisfiable.length === 0) return { kind: 'unsatisfiable' };
  const merged = mergeOverlapping(satisfiable);
  return merged.length === 1 ? { kind: 'partial', ...merged[0]! } : WHOLE;
}

/** Overlapping or adjacent ranges become one (§14.3 lets a server coalesce them). */
function mergeOverlapping(ranges: { start: number; end: number }[]): { start: number; end: number }[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const merged = [{ ...sorted[0]! }];
  for (const range of sorted.slice(1)) {
    const last = merged.at(-1)!;
    if (range.start <= last.end + 1) last.end = Math.max(last.end, range.end);
    else merged.push({ ...range });
  }
  return merged;
}
