import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  groupLayers,
  HEAVY_NAR_SIZE,
  InvalidBudgetError,
  InvalidGraphError,
  POPULAR_THRESHOLD,
} from './group.ts';
import type { LayerGroup, Popularity, StorePathNode } from './group.ts';
import { storePathName } from './popularity.ts';

const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';
const MB = 1000 * 1000;
const NO_POPULARITY: Popularity = new Map();

/** A realistic store path whose hash is derived from the name, so tests can speak in names. */
function sp(name: string): string {
  const digest = createHash('sha256').update(name).digest();
  let hash = '';
  for (let i = 0; i < 32; i++) hash += NIX_BASE32[(digest[i] ?? 0) % 32];
  return `/nix/store/${hash}-${name}`;
}

function node(name: string, narSize: number, references: string[] = []): StorePathNode {
  return { path: sp(name), narSize, references: references.map(sp) };
}

/** Groups as sorted name lists, sorted, so assertions ignore the output order. */
function shape(groups: LayerGroup[]): string[][] {
  return groups.map((g) => g.paths.map(storePathName).sort()).sort((a, b) => (a.join() < b.join() ? -1 : 1));
}

function groupOf(groups: LayerGroup[], name: string): LayerGroup {
  const found = groups.find((g) => g.paths.includes(sp(name)));
  assert.ok(found, `${name} is in no group`);
  return found;
}

function roots(...names: string[]): string[] {
  return names.map(sp);
}

// mulberry32: small, seeded, good enough to generate test graphs reproducibly.
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

interface RandomClosure {
  graph: StorePathNode[];
  roots: string[];
}

/**
 * Nodes p0..p(n-1) only reference higher-numbered nodes (so it is a DAG),
 * sometimes paths outside the graph; roots are a random subset, so some nodes
 * are reachable only through those outside paths.
 */
function randomClosure(rand: () => number, size: number, options: { allReachable?: boolean } = {}): RandomClosure {
  const names = Array.from({ length: size }, (_, i) => `p${i}`);
  const referenced = new Set<string>();
  const graph = names.map((name, i) => {
    const refs = new Set<string>();
    const fanOut = Math.floor(rand() * 4);
    for (let k = 0; k < fanOut && i + 1 < size; k++) {
      const target = names[i + 1 + Math.floor(rand() * (size - i - 1))] ?? name;
      refs.add(target);
      referenced.add(target);
    }
    if (rand() < 0.1) refs.add(`outside-${i}`);
    return node(name, Math.floor(rand() * 5 * MB), [...refs]);
  });
  const rootNames = names.filter((name) =>
    options.allReachable ? !referenced.has(name) || rand() < 0.1 : rand() < 0.15,
  );
  return { graph, roots: roots(...rootNames) };
}

/**
 * Domination by its definition: d dominates v when v cannot be reached from
 * the roots once d is removed. A group is named by the dominator of v that
 * nothing but the root dominates.
 */
function bruteForceGroups(closure: RandomClosure): string[][] {
  const byPath = new Map(closure.graph.map((n) => [n.path, n]));
  const reachable = (removed: string | undefined): Set<string> => {
    const seen = new Set<string>();
    const stack = closure.roots.filter((r) => r !== removed);
    while (stack.length > 0) {
      const p = stack.pop() ?? '';
      if (seen.has(p)) continue;
      seen.add(p);
      for (const r of byPath.get(p)?.references ?? []) if (byPath.has(r) && r !== removed) stack.push(r);
    }
    return seen;
  };
  const all = reachable(undefined);
  const dominators = new Map<string, string[]>();
  for (const p of all) dominators.set(p, []);
  for (const d of all) {
    const without = reachable(d);
    for (const v of all) if (!without.has(v)) dominators.get(v)?.push(d);
  }
  const groups = new Map<string, string[]>();
  for (const v of all) {
    const top = (dominators.get(v) ?? []).find((d) => dominators.get(d)?.length === 1) ?? v;
    groups.set(top, [...(groups.get(top) ?? []), storePathName(v)]);
  }
  return [...groups.values()].map((g) => g.sort()).sort((a, b) => (a.join() < b.join() ? -1 : 1));
}

function assertEachPathOnce(graph: StorePathNode[], groups: LayerGroup[], context: string): void {
  const seen = groups.flatMap((g) => g.paths);
  assert.equal(seen.length, graph.length, `${context}: ${seen.length} grouped paths for ${graph.length} nodes`);
  assert.deepEqual(new Set(seen), new Set(graph.map((n) => n.path)), context);
  const sizes = new Map(graph.map((n) => [n.path, n.narSize]));
  for (const g of groups) {
    assert.deepEqual(g.paths, [...g.paths].sort(), `${context}: group paths are sorted`);
    assert.equal(g.narSize, g.paths.reduce((s, p) => s + (sizes.get(p) ?? NaN), 0), `${context}: group size`);
  }
}

describe('groupLayers: input checks', () => {
  it('returns no groups for an empty closure', () => {
    assert.deepEqual(groupLayers([], { budget: 5, roots: [], popularity: NO_POPULARITY }), []);
  });

  it('rejects a budget that is not a positive integer', () => {
    for (const budget of [0, -1, 1.5, Number.NaN]) {
      assert.throws(
        () => groupLayers([node('a', 1)], { budget, roots: roots('a'), popularity: NO_POPULARITY }),
        (e: unknown) => e instanceof InvalidBudgetError && e.code === 'INVALID_LAYER_BUDGET' && Object.is(e.budget, budget),
        String(budget),
      );
    }
  });

  it('rejects a path listed twice, a negative NAR size and a top-level path missing from the graph', () => {
    const cases: Array<[StorePathNode[], string[], RegExp]> = [
      [[node('a', 1), node('a', 1)], roots('a'), /listed more than once/],
      [[node('a', -1)], roots('a'), /non-negative/],
      [[node('a', 1)], roots('a', 'b'), /not in the graph/],
    ];
    for (const [graph, top, message] of cases) {
      assert.throws(() => groupLayers(graph, { budget: 5, roots: top, popularity: NO_POPULARITY }), (e: unknown) => {
        return e instanceof InvalidGraphError && e.code === 'INVALID_CLOSURE_GRAPH' && message.test(e.message);
      });
    }
  });
});

describe('groupLayers: the dominator tree decides the groups', () => {
  it('gives a library shared by two tools its own group (diamond)', () => {
    const graph = [node('alpha', MB, ['libshared']), node('beta', MB, ['libshared']), node('libshared', MB)];
    const groups = groupLayers(graph, { budget: 10, roots: roots('alpha', 'beta'), popularity: NO_POPULARITY });
    assert.deepEqual(shape(groups), [['alpha'], ['beta'], ['libshared']]);
  });

  it('collapses a chain under one top-level path into one group', () => {
    const graph = [node('a', 1 * MB, ['b']), node('b', 2 * MB, ['c']), node('c', 3 * MB)];
    const groups = groupLayers(graph, { budget: 10, roots: roots('a'), popularity: NO_POPULARITY });
    assert.deepEqual(groups, [{ paths: [sp('a'), sp('b'), sp('c')].sort(), narSize: 6 * MB, mergeRating: 6 * MB }]);
  });

  it('ignores references to paths outside the graph and references to the path itself', () => {
    const graph = [{ ...node('a', 1, ['b']), references: [sp('b'), sp('a'), sp('not-in-closure')] }, node('b', 1)];
    const groups = groupLayers(graph, { budget: 10, roots: roots('a'), popularity: NO_POPULARITY });
    assert.deepEqual(shape(groups), [['a', 'b']]);
  });

  it('still groups paths that only outside paths reference, keeping what they reference with them', () => {
    const graph = [node('a', 1), node('orphan', 1, ['orphan-dep']), node('orphan-dep', 1)];
    const groups = groupLayers(graph, { budget: 10, roots: roots('a'), popularity: NO_POPULARITY });
    assert.deepEqual(shape(groups), [['a'], ['orphan', 'orphan-dep']]);
  });

  it('matches the definition of domination on random closures', () => {
    const rand = prng(7);
    for (let i = 0; i < 40; i++) {
      const closure = randomClosure(rand, 5 + Math.floor(rand() * 30), { allReachable: true });
      const groups = groupLayers(closure.graph, { budget: 1000, roots: closure.roots, popularity: NO_POPULARITY });
      assert.deepEqual(shape(groups), bruteForceGroups(closure), `closure ${i}`);
    }
  });
});

describe('groupLayers: heavy and popular paths', () => {
  it(`splits off a path whose NAR is larger than ${HEAVY_NAR_SIZE} bytes, with what it dominates`, () => {
    const graph = [node('app', MB, ['big']), node('big', HEAVY_NAR_SIZE + 1, ['big-dep']), node('big-dep', MB)];
    const groups = groupLayers(graph, { budget: 10, roots: roots('app'), popularity: NO_POPULARITY });
    assert.deepEqual(shape(groups), [['app'], ['big', 'big-dep']]);
  });

  it('keeps a path of exactly the threshold size with whoever dominates it', () => {
    const graph = [node('app', MB, ['big']), node('big', HEAVY_NAR_SIZE)];
    const groups = groupLayers(graph, { budget: 10, roots: roots('app'), popularity: NO_POPULARITY });
    assert.deepEqual(shape(groups), [['app', 'big']]);
  });

  it(`splits off a path with a popularity of ${POPULAR_THRESHOLD} or more, but not below`, () => {
    const graph = [node('app', MB, ['libpop']), node('libpop', MB, ['libpop-dep']), node('libpop-dep', MB)];
    const at = new Map([['libpop', POPULAR_THRESHOLD]]);
    const below = new Map([['libpop', POPULAR_THRESHOLD - 1]]);
    assert.deepEqual(shape(groupLayers(graph, { budget: 10, roots: roots('app'), popularity: at })), [
      ['app'],
      ['libpop', 'libpop-dep'],
    ]);
    assert.deepEqual(shape(groupLayers(graph, { budget: 10, roots: roots('app'), popularity: below })), [
      ['app', 'libpop', 'libpop-dep'],
    ]);
  });

  it('treats CA certificates and iana-etc as popular without any popularity data, as every image has them', () => {
    const graph = [node('app', MB, ['nss-cacert-3.98', 'iana-etc-20240318']), node('nss-cacert-3.98', MB), node('iana-etc-20240318', MB)];
    const groups = groupLayers(graph, { budget: 10, roots: roots('app'), popularity: NO_POPULARITY });
    assert.deepEqual(shape(groups), [['app'], ['iana-etc-20240318'], ['nss-cacert-3.98']]);
  });
});

describe('groupLayers: merge ratings and the layer budget', () => {
  it("rates a group by its top path's popularity (not its members') times its NAR size, counting unknown paths as 1", () => {
    const graph = [node('app', 3, ['lib']), node('lib', 5, ['lib-dep']), node('lib-dep', 7)];
    const groups = groupLayers(graph, { budget: 10, roots: roots('app', 'lib'), popularity: new Map([['lib', 20], ['lib-dep', 50]]) });
    assert.equal(groupOf(groups, 'app').mergeRating, 1 * 3);
    assert.equal(groupOf(groups, 'lib').mergeRating, 20 * (5 + 7));
  });

  it('returns groups in ascending rating order', () => {
    const graph = [node('a', 30), node('b', 10), node('c', 20)];
    const groups = groupLayers(graph, { budget: 10, roots: roots('a', 'b', 'c'), popularity: NO_POPULARITY });
    assert.deepEqual(groups.map((g) => g.mergeRating), [10, 20, 30]);
  });

  it('over budget, merges the lowest-rated groups into one and leaves the others untouched', () => {
    const graph = [node('r1', 1), node('r2', 2), node('r3', 3), node('r4', 4), node('r5', 5)];
    const groups = groupLayers(graph, { budget: 3, roots: roots('r1', 'r2', 'r3', 'r4', 'r5'), popularity: NO_POPULARITY });
    assert.deepEqual(groups, [
      { paths: [sp('r4')], narSize: 4, mergeRating: 4 },
      { paths: [sp('r5')], narSize: 5, mergeRating: 5 },
      { paths: [sp('r1'), sp('r2'), sp('r3')].sort(), narSize: 6, mergeRating: 6 },
    ]);
  });

  it('with a budget of 1, puts everything into one group', () => {
    const closure = randomClosure(prng(3), 50);
    const groups = groupLayers(closure.graph, { budget: 1, roots: closure.roots, popularity: NO_POPULARITY });
    assert.equal(groups.length, 1);
    assertEachPathOnce(closure.graph, groups, 'budget 1');
  });

  it("reproduces the example in Nixery's documentation (G heavy, E popular)", () => {
    const graph = [
      node('A', 100_000, ['E']),
      node('B', 100_000, ['E']),
      node('C', 100_000, ['E', 'D']),
      node('D', MB, ['F', 'G']),
      node('E', 100_000),
      node('F', MB),
      node('G', 2 * HEAVY_NAR_SIZE),
    ];
    const options = { roots: roots('A', 'B', 'C', 'D'), popularity: new Map([['E', 1000]]) };
    const at = (budget: number): string[][] => shape(groupLayers(graph, { ...options, budget }));
    assert.deepEqual(at(1), [['A', 'B', 'C', 'D', 'E', 'F', 'G']]);
    assert.deepEqual(at(2), [['A', 'B', 'C', 'D', 'E', 'F'], ['G']]);
    assert.deepEqual(at(3), [['A', 'B', 'C', 'D', 'F'], ['E'], ['G']]);
    assert.deepEqual(at(4), [['A', 'B', 'C'], ['D', 'F'], ['E'], ['G']]);
    assert.deepEqual(at(10), [['A'], ['B'], ['C'], ['D', 'F'], ['E'], ['G']]);
  });

  it('fits a 200-path closure into a budget of 10 with every path exactly once', () => {
    const closure = randomClosure(prng(200), 200);
    const ideal = groupLayers(closure.graph, { budget: 1000, roots: closure.roots, popularity: NO_POPULARITY });
    assert.ok(ideal.length > 10, `the closure must need merging (it has ${ideal.length} groups)`);
    const groups = groupLayers(closure.graph, { budget: 10, roots: closure.roots, popularity: NO_POPULARITY });
    assert.equal(groups.length, 10);
    assertEachPathOnce(closure.graph, groups, '200 paths');
  });

  it('places every path in exactly one group for random closures and budgets', () => {
    const rand = prng(42);
    for (let i = 0; i < 200; i++) {
      const closure = randomClosure(rand, Math.floor(rand() * 60));
      const budget = 1 + Math.floor(rand() * 12);
      const popularity = new Map(closure.graph.filter(() => rand() < 0.1).map((n) => [storePathName(n.path), Math.floor(rand() * 300)]));
      const groups = groupLayers(closure.graph, { budget, roots: closure.roots, popularity });
      const ideal = groupLayers(closure.graph, { budget: 1000, roots: closure.roots, popularity });
      assertEachPathOnce(closure.graph, groups, `closure ${i}`);
      assert.equal(groups.length, Math.min(budget, ideal.length), `closure ${i}: group count`);
    }
  });
});

describe('groupLayers: determinism and sharing across images', () => {
  it('gives the same result whatever the order of the graph and of each reference list', () => {
    const rand = prng(1234);
    for (let i = 0; i < 20; i++) {
      const closure = randomClosure(rand, 80);
      const popularity = new Map(closure.graph.filter(() => rand() < 0.2).map((n) => [storePathName(n.path), Math.floor(rand() * 200)]));
      const budget = 3 + Math.floor(rand() * 20);
      const expected = groupLayers(closure.graph, { budget, roots: closure.roots, popularity });
      for (let k = 0; k < 5; k++) {
        const graph = shuffled(closure.graph, rand).map((n) => ({ ...n, references: shuffled(n.references, rand) }));
        const actual = groupLayers(graph, { budget, roots: shuffled(closure.roots, rand), popularity });
        assert.deepEqual(actual, expected, `closure ${i}, shuffle ${k}`);
      }
    }
  });

  it('puts a popular library into the same group in two images that reach it differently', () => {
    const libshared = [node('libshared', 2 * MB, ['libshared-dep']), node('libshared-dep', MB)];
    const first = [node('alpha', MB, ['libshared', 'alpha-dep']), node('alpha-dep', MB), node('x-user', MB, ['libshared']), ...libshared];
    const second = [node('beta', MB, ['libshared']), ...libshared];
    const popularity = new Map([['libshared', 5000]]);

    const inFirst = groupOf(groupLayers(first, { budget: 10, roots: roots('alpha', 'x-user'), popularity }), 'libshared');
    const inSecond = groupOf(groupLayers(second, { budget: 10, roots: roots('beta'), popularity }), 'libshared');
    assert.deepEqual(inSecond, inFirst);
    assert.deepEqual(inFirst.paths.map(storePathName).sort(), ['libshared', 'libshared-dep']);

    // Without popularity data the second image has no reason to split it off: beta dominates it.
    const unsplit = groupOf(groupLayers(second, { budget: 10, roots: roots('beta'), popularity: NO_POPULARITY }), 'libshared');
    assert.deepEqual(unsplit.paths.map(storePathName).sort(), ['beta', 'libshared', 'libshared-dep']);
  });
});

/** The groups of `after` that `before` lacks, and those of `before` gone from `after`, by their path sets. */
function changedGroups(before: LayerGroup[], after: LayerGroup[]): { added: string[][]; removed: string[][] } {
  const key = (g: LayerGroup) => g.paths.join('\n');
  const had = new Set(before.map(key));
  const has = new Set(after.map(key));
  const names = (g: LayerGroup) => g.paths.map(storePathName).sort();
  const sorted = (lists: string[][]) => lists.sort((a, b) => (a.join() < b.join() ? -1 : 1));
  return { added: sorted(after.filter((g) => !had.has(key(g))).map(names)), removed: sorted(before.filter((g) => !has.has(key(g))).map(names)) };
}

// A layer's digest is a function of its paths, so a group that keeps its paths is a layer that is
// neither packed nor pushed again: what a rebuild after a one-package change costs is its changed groups.
describe('groupLayers: a rebuild after one package changed', () => {
  // glibc is popular (its own group in every image); zlib is shared by git and curl.
  const base = [
    node('glibc', 30 * MB),
    node('zlib', MB, ['glibc']),
    node('git', 20 * MB, ['zlib', 'glibc', 'git-doc']),
    node('git-doc', 5 * MB),
    node('curl', 4 * MB, ['zlib', 'glibc']),
    node('htop', 2 * MB, ['glibc', 'ncurses']),
    node('ncurses', 3 * MB, ['glibc']),
  ];
  const baseRoots = roots('git', 'curl', 'htop');
  const popularity = new Map([['glibc', 300_000]]);

  it('adds one group for a new package that uses only what others share, and changes no other', () => {
    const before = groupLayers(base, { budget: 20, roots: baseRoots, popularity });
    const after = groupLayers([...base, node('hello', 100_000, ['glibc'])], { budget: 20, roots: [...baseRoots, sp('hello')], popularity });
    assert.deepEqual(changedGroups(before, after), { added: [['hello']], removed: [] });
  });

  it('changes only the group of the package whose new version replaced it', () => {
    const before = groupLayers(base, { budget: 20, roots: baseRoots, popularity });
    const graph = [...base.filter((n) => n.path !== sp('htop')), node('htop-3.3', 2 * MB, ['glibc', 'ncurses'])];
    const after = groupLayers(graph, { budget: 20, roots: roots('git', 'curl', 'htop-3.3'), popularity });
    assert.deepEqual(changedGroups(before, after), { added: [['htop-3.3', 'ncurses']], removed: [['htop', 'ncurses']] });
  });

  it("splits off a path the new package shares with an image's package, changing that package's group only (Nixery's dominator rule)", () => {
    const before = groupLayers(base, { budget: 20, roots: baseRoots, popularity });
    const after = groupLayers([...base, node('tig', MB, ['git-doc', 'glibc'])], { budget: 20, roots: [...baseRoots, sp('tig')], popularity });
    assert.deepEqual(changedGroups(before, after), { added: [['git'], ['git-doc'], ['tig']], removed: [['git', 'git-doc']] });
  });

  it('over budget, changes the merged group and at most one group it absorbs besides the new one', () => {
    const rand = prng(99);
    let overBudget = 0;
    for (let i = 0; i < 30; i++) {
      const closure = randomClosure(rand, 60, { allReachable: true });
      const pop = new Map(closure.graph.filter(() => rand() < 0.2).map((n) => [storePathName(n.path), 100 + Math.floor(rand() * 1000)]));
      const budget = 4 + Math.floor(rand() * 10);
      // A small new package referencing a few paths that are already groups of their own (tied to the root).
      const before = groupLayers(closure.graph, { budget, roots: closure.roots, popularity: pop });
      if (before.length === budget) overBudget++;
      const shared = closure.roots.filter(() => rand() < 0.3);
      const added = { path: sp(`new-${i}`), narSize: Math.floor(rand() * MB), references: shared };
      const after = groupLayers([...closure.graph, added], { budget, roots: [...closure.roots, added.path], popularity: pop });
      const { added: grown, removed } = changedGroups(before, after);
      assert.ok(removed.length <= 2 && grown.length <= 2, `closure ${i}: ${JSON.stringify({ grown, removed })}`);
      // Every path that moved went into the merged group (the largest change) or is the new package.
      const moved = new Set(removed.flat());
      const landing = grown.flat();
      for (const p of moved) assert.ok(landing.includes(p), `closure ${i}: ${p} is in a changed group`);
      assert.ok(landing.includes(`new-${i}`), `closure ${i}: the new package is in a changed group`);
    }
    assert.ok(overBudget >= 20, `only ${overBudget} of 30 closures were over budget`);
  });
});
