// Groups the store paths of an image's runtime closure into layers, following
// Nixery's algorithm (layers/layers.go): an artificial root points at the
// image's top-level paths and at every heavy or popular path; each child of
// the root in the dominator tree becomes one group with everything it
// dominates; when there are more groups than the budget allows, the
// lowest-rated groups are merged into one.
//
// Why this shares layers across images: a layer's digest is a function of the
// set of store paths in it, and a group's set is "its top path plus everything
// reachable from the root only through it". Heavy and popular paths are tied
// to the root in every image, so their group is cut off from whoever happens to
// reference them and depends only on their own closure: `glibc` forms the same
// group whether `git` or `htop` pulled it in. Everything here is computed from
// the graph alone (node ids come from sorted paths, the dominator tree is
// unique for a graph), so neither input order nor reference order can change
// a group.
//
// Where it cannot: (1) a path inside X's closure that is also referenced from
// outside that closure in one image but not in another is dominated by X in
// only one of them, so X's group differs; (2) over budget, the merged group
// depends on which other groups the image has; (3) images built with different
// popularity data (or none) draw the root edges differently.
//
// So an image differing from a built one by one package differs in few groups, and only those are
// packed and pushed again (the layer cache and the push skip the rest by digest): the package's
// own group; with (1), the group of a package it shares a path with; with (2), the merged group,
// which also absorbs the lowest-rated other group when the new one rates above the merge. Nothing
// else moves (group.test.ts, "a rebuild after one package changed").

import { storePathName, type Popularity } from './popularity.ts';

export type { Popularity };

export interface StorePathNode {
  path: string;
  narSize: number;
  /** May name paths outside the graph (ignored) but never the path itself. */
  references: string[];
}


export interface LayerGroup {
  /** Sorted. */
  paths: string[];
  narSize: number;
  mergeRating: number;
}

export interface GroupOptions {
  /** Maximum number of layers for store paths. */
  budget: number;
  /** The top-level store paths the image asked for. */
  roots: string[];
  popularity: Popularity;
}

/**
 * A path with a NAR larger than this (bytes) gets its own group. Nixery's
 * value (100 MB, strictly greater); Nixery compares it with the closure size
 * from exportReferencesGraph, this module with the path's own NAR size.
 */
export const HEAVY_NAR_SIZE = 100 * 1000 * 1000;
/**
 * A path whose popularity count reaches this gets its own group. Nixery's
 * value: popcount counts how many store paths in the channel reference a path.
 */
export const POPULAR_THRESHOLD = 100;
/** Popularity of a path missing from the data, as in Nixery, so its size still counts in the rating. */
export const DEFAULT_POPULARITY = 1;
/**
 * Nixery adds CA certificates and iana-etc to every image, so they are rated
 * above anything in the data (glibc has ~300k references).
 */
export const ALWAYS_INCLUDED_POPULARITY = 500_000;
const ALWAYS_INCLUDED_PREFIXES = ['nss-cacert', 'iana-etc'] as const;

export class LayerGroupingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayerGroupingError';
  }
}

export class InvalidBudgetError extends LayerGroupingError {
  readonly code = 'INVALID_LAYER_BUDGET';
  readonly budget: number;
  constructor(budget: number) {
    super(`layer budget must be an integer of at least 1, got ${budget}`);
    this.name = 'InvalidBudgetError';
    this.budget = budget;
  }
}

/** The closure graph handed in is inconsistent; grouping it would silently drop or duplicate paths. */
export class InvalidGraphError extends LayerGroupingError {
  readonly code = 'INVALID_CLOSURE_GRAPH';
  readonly storePath: string;
  constructor(storePath: string, reason: string) {
    super(`closure graph: ${JSON.stringify(storePath)}: ${reason}`);
    this.name = 'InvalidGraphError';
    this.storePath = storePath;
  }
}

/** Nixery's popularity of a store path, with its override for paths every image contains. */
export function pathPopularity(path: string, popularity: Popularity): number {
  const name = storePathName(path);
  if (ALWAYS_INCLUDED_PREFIXES.some((prefix) => name.startsWith(prefix))) return ALWAYS_INCLUDED_POPULARITY;
  return popularity.get(name) ?? DEFAULT_POPULARITY;
}

// Store path names are ASCII (Nix's rules), so code-unit order is also the
// byte order the packer sorts by.
function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareGroups(a: LayerGroup, b: LayerGroup): number {
  // Groups are disjoint and never empty, so the first path breaks every tie.
  return a.mergeRating - b.mergeRating || comparePaths(a.paths[0] ?? '', b.paths[0] ?? '');
}

export function groupLayers(graph: StorePathNode[], options: GroupOptions): LayerGroup[] {
  const { budget, roots, popularity } = options;
  if (!Number.isInteger(budget) || budget < 1) throw new InvalidBudgetError(budget);

  // Node 0 is the artificial root; node i + 1 is the i-th path in sorted order,
  // so every later tie-break by id is a tie-break by path.
  const nodes = [...graph].sort((a, b) => comparePaths(a.path, b.path));
  const ids = new Map<string, number>();
  nodes.forEach((node, i) => {
    if (ids.has(node.path)) throw new InvalidGraphError(node.path, 'listed more than once');
    if (!Number.isFinite(node.narSize) || node.narSize < 0) {
      throw new InvalidGraphError(node.path, `NAR size must be a non-negative number, got ${node.narSize}`);
    }
    ids.set(node.path, i + 1);
  });
  const count = nodes.length + 1;

  const succ: number[][] = [[]];
  for (const node of nodes) {
    const self = ids.get(node.path);
    const out = new Set<number>();
    for (const ref of node.references) {
      const id = ids.get(ref);
      if (id !== undefined && id !== self) out.add(id);
    }
    succ.push([...out].sort((a, b) => a - b));
  }

  const pops = [0, ...nodes.map((node) => pathPopularity(node.path, popularity))];
  const fromRoot = new Set<number>();
  for (const root of roots) {
    const id = ids.get(root);
    if (id === undefined) throw new InvalidGraphError(root, 'top-level path is not in the graph');
    fromRoot.add(id);
  }
  nodes.forEach((node, i) => {
    if (node.narSize > HEAVY_NAR_SIZE || (pops[i + 1] ?? 0) >= POPULAR_THRESHOLD) fromRoot.add(i + 1);
  });
  attachUnreachable(succ, fromRoot, count);
  succ[0] = [...fromRoot].sort((a, b) => a - b);

  const idom = immediateDominators(succ, count);

  // Each node's group is named by its ancestor just below the root. idom[v]
  // comes before v in reverse postorder, hence `order`.
  const top = new Int32Array(count);
  const members = new Map<number, number[]>();
  for (const v of idom.order) {
    if (v === 0) continue;
    const parent = idom.idom[v] ?? 0;
    const t = parent === 0 ? v : (top[parent] ?? v);
    top[v] = t;
    const list = members.get(t);
    if (list) list.push(v);
    else members.set(t, [v]);
  }

  const groups: LayerGroup[] = [];
  for (const [t, list] of members) {
    const paths = list.map((id) => nodes[id - 1]?.path ?? '').sort(comparePaths);
    const narSize = list.reduce((sum, id) => sum + (nodes[id - 1]?.narSize ?? 0), 0);
    groups.push({ paths, narSize, mergeRating: (pops[t] ?? DEFAULT_POPULARITY) * narSize });
  }
  groups.sort(compareGroups);
  return fitBudget(groups, budget);
}

/**
 * Paths that nothing reachable from the root references (their referrers lie
 * outside the graph) would be lost; they are treated as further top-level
 * paths. Only the sources of the unreachable part are attached, so what they
 * reference still groups under them.
 */
function attachUnreachable(succ: number[][], fromRoot: Set<number>, count: number): void {
  const seen = new Uint8Array(count);
  seen[0] = 1;
  const visit = (start: number): void => {
    if (seen[start]) return;
    const stack = [start];
    seen[start] = 1;
    while (stack.length > 0) {
      const v = stack.pop() ?? 0;
      for (const w of succ[v] ?? []) {
        if (!seen[w]) {
          seen[w] = 1;
          stack.push(w);
        }
      }
    }
  };
  for (const id of fromRoot) visit(id);

  for (;;) {
    const hasUnseenReferrer = new Uint8Array(count);
    let anyUnseen = false;
    for (let v = 1; v < count; v++) {
      if (seen[v]) continue;
      anyUnseen = true;
      for (const w of succ[v] ?? []) hasUnseenReferrer[w] = 1;
    }
    if (!anyUnseen) return;
    const sources: number[] = [];
    for (let v = 1; v < count; v++) if (!seen[v] && !hasUnseenReferrer[v]) sources.push(v);
    // Only a reference cycle leaves no source; Nix forbids those, but the
    // smallest path is a deterministic way not to loop forever.
    if (sources.length === 0) {
      for (let v = 1; v < count; v++) {
        if (!seen[v]) {
          sources.push(v);
          break;
        }
      }
    }
    for (const s of sources) {
      fromRoot.add(s);
      visit(s);
    }
  }
}

interface Dominators {
  /** idom[v] for every node; idom[0] = 0. */
  idom: Int32Array;
  /** Reverse postorder from node 0. */
  order: number[];
}

/**
 * Cooper, Harvey & Kennedy, "A Simple, Fast Dominance Algorithm": iterate
 * idom(v) = common dominator of v's processed predecessors in reverse
 * postorder until nothing changes. On a DAG the first pass is final; the loop
 * only matters for cycles. Every node must be reachable from node 0.
 */
function immediateDominators(succ: number[][], count: number): Dominators {
  const order: number[] = [];
  const visited = new Uint8Array(count);
  const stack: Array<{ v: number; next: number }> = [{ v: 0, next: 0 }];
  visited[0] = 1;
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (!frame) break;
    const out = succ[frame.v] ?? [];
    if (frame.next < out.length) {
      const w = out[frame.next++] ?? 0;
      if (!visited[w]) {
        visited[w] = 1;
        stack.push({ v: w, next: 0 });
      }
    } else {
      order.push(frame.v);
      stack.pop();
    }
  }
  order.reverse();

  const rank = new Int32Array(count);
  order.forEach((v, i) => (rank[v] = i));
  const preds: number[][] = Array.from({ length: count }, () => []);
  for (let v = 0; v < count; v++) for (const w of succ[v] ?? []) preds[w]?.push(v);

  const idom = new Int32Array(count).fill(-1);
  idom[0] = 0;
  const at = (a: Int32Array, i: number): number => a[i] ?? 0;
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      while (at(rank, a) > at(rank, b)) a = at(idom, a);
      while (at(rank, b) > at(rank, a)) b = at(idom, b);
    }
    return a;
  };

  let changed = true;
  while (changed) {
    changed = false;
    for (const v of order) {
      if (v === 0) continue;
      let next = -1;
      for (const p of preds[v] ?? []) {
        if (at(idom, p) === -1) continue;
        next = next === -1 ? p : intersect(p, next);
      }
      if (next !== at(idom, v)) {
        idom[v] = next;
        changed = true;
      }
    }
  }
  return { idom, order };
}

/**
 * Nixery merges in ascending rating order, folding each next group into the
 * running merge, so over budget the lowest-rated groups become a single layer
 * and the rest stay untouched (and so keep their cross-image digests).
 */
function fitBudget(sorted: LayerGroup[], budget: number): LayerGroup[] {
  if (sorted.length <= budget) return sorted;
  const merging = sorted.slice(0, sorted.length - budget + 1);
  const merged: LayerGroup = {
    paths: merging.flatMap((g) => g.paths).sort(comparePaths),
    narSize: merging.reduce((sum, g) => sum + g.narSize, 0),
    mergeRating: merging.reduce((sum, g) => sum + g.mergeRating, 0),
  };
  return [merged, ...sorted.slice(merging.length)].sort(compareGroups);
}
