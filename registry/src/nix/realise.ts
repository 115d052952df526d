// From a package list to a realised runtime closure, in three Nix calls:
//   evaluate  nix-instantiate resolve.nix     names → derivations (or the missing names); also alone: evaluateImage
//   realise   nix-store --realise             builds or substitutes what is not in the store
//   graph     nix path-info --recursive       the closure: paths, sizes, references
import path from 'node:path';
import type { PackageSource } from '../config/package-source.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import {
  NixBuildError,
  NixEvaluationError,
  NixOutputError,
  NixTimeoutError,
  PackagesNotFoundError,
  type NixPhase,
} from './errors.ts';
import { resolveGitRef, type GitRefOptions, type GitSpec } from './git-ref.ts';
import { defaultNixDir } from './nix-dir.ts';
import { run, type RunOptions, type RunResult } from './run.ts';
import { productNixArgs } from './settings.ts';

export interface ImageRequest {
  source: PackageSource;
  /** The image tag; only the git source reads it (branch, tag, commit or `latest`). */
  ref?: string;
  /**
   * For the git source: `ref` already resolved by resolveGitRef (e.g. while
   * fingerprinting the source), so that Nix evaluates exactly that commit
   * and the remote is not asked twice. It must come from resolveGitRef:
   * that is where a commit is checked against the trusted refs.
   */
  gitSpec?: GitSpec;
  /** Attribute names as the image name gives them, already expanded and sorted by the caller. */
  packages: string[];
  system: 'x86_64-linux' | 'aarch64-linux';
  /**
   * What evaluateImage found for these packages: realiseImage then runs no evaluation and
   * realises these derivations, in this order (the order of the image's contents).
   */
  evaluated?: EvaluatedImage;
}

export interface NixOptions {
  /** NIX_TIMEOUT: the limit for each phase; Nix is stopped (its whole process group) when it is exceeded. */
  timeoutSeconds: number;
  /** Where resolve.nix and load-source.nix are; default: the repository's nix/ folder. */
  nixDir?: string;
  log?: Logger;
  /** Aborting stops Nix and rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Extra `--option NAME VALUE` pairs for every Nix call, e.g. `{ substituters: '' }`
   * where no binary cache is reachable: Nix otherwise spends ~4 s retrying it.
   */
  nixOptions?: Record<string, string>;
}

export interface StorePath {
  path: string;
  narSize: number;
  /** SHA-256 of the path's NAR, as Nix prints it (`sha256-<base64>`, or `sha256:<nix32>` from older Nix). */
  narHash: string;
  /** Other store paths this one refers to; never itself. */
  references: string[];
}

export interface ResolvedPackage {
  /** The name as requested. */
  name: string;
  /** Where it was found, e.g. ['haskellPackages', 'pandoc'] for `haskellpackages.pandoc`. */
  attrPath: string[];
  /** The outputs an environment would get (meta.outputsToInstall, else the default output). */
  outPaths: string[];
}

/** A requested name resolved to its derivation. */
export interface EvaluatedPackage {
  /** The name as requested. */
  name: string;
  attrPath: string[];
  drvPath: string;
  /** The outputs an environment would get, by output name. */
  outputs: Record<string, string>;
}

export interface EvaluatedImage {
  /** In request order. */
  packages: EvaluatedPackage[];
  evaluateMs: number;
}

export interface RealisedImage {
  /** In request order (with `evaluated`: in its order). */
  packages: ResolvedPackage[];
  /** The runtime closure of every package's outPaths, sorted by path. */
  closure: StorePath[];
  timings: { evaluateMs: number; realiseMs: number; graphMs: number };
}

interface Evaluated {
  missing: string[];
  failed: string[];
  packages: EvaluatedPackage[];
}

interface Context {
  timeoutSeconds: number;
  signal?: AbortSignal;
  log: Logger;
  commonArgs: string[];
}

/**
 * Resolves the requested names to derivations, without building anything. Throws
 * PackagesNotFoundError naming every name that addresses nothing (or fails to evaluate).
 */
export async function evaluateImage(req: ImageRequest, opts: NixOptions): Promise<EvaluatedImage> {
  const nixDir = opts.nixDir ?? defaultNixDir();
  const ctx = context(req, opts, nixDir);
  const t0 = performance.now();
  const evaluated = await evaluate(req, nixDir, ctx);
  const notFound = [...new Set([...evaluated.missing, ...evaluated.failed])].sort();
  if (notFound.length) {
    throw new PackagesNotFoundError(notFound, [...new Set(evaluated.failed)].sort());
  }
  const evaluateMs = Math.round(performance.now() - t0);
  ctx.log.debug('evaluated', { packages: evaluated.packages, ms: evaluateMs });
  return { packages: evaluated.packages, evaluateMs };
}

export async function realiseImage(req: ImageRequest, opts: NixOptions): Promise<RealisedImage> {
  const nixDir = opts.nixDir ?? defaultNixDir();
  const ctx = context(req, opts, nixDir);
  const { log } = ctx;

  const t0 = performance.now();
  const evaluated = req.evaluated ?? (await evaluateImage(req, opts));
  const packages: ResolvedPackage[] = evaluated.packages.map((p) => ({
    name: p.name,
    attrPath: p.attrPath,
    outPaths: Object.values(p.outputs),
  }));
  const t1 = performance.now();

  await realise(evaluated.packages, ctx);
  const t2 = performance.now();

  const closure = await graph(unique(packages.flatMap((p) => p.outPaths)), ctx);
  const t3 = performance.now();

  const timings = { evaluateMs: req.evaluated ? req.evaluated.evaluateMs : Math.round(t1 - t0), realiseMs: Math.round(t2 - t1), graphMs: Math.round(t3 - t2) };
  log.info('realised', { packages: req.packages, paths: closure.length, timings });
  return { packages, closure, timings };
}

function context(req: ImageRequest, opts: NixOptions, nixDir: string): Context {
  if (!(opts.timeoutSeconds > 0) || !Number.isFinite(opts.timeoutSeconds)) {
    throw new RangeError(`timeoutSeconds must be a positive number, got ${opts.timeoutSeconds}`);
  }
  const log = (opts.log ?? silentLogger).child({ component: 'nix', system: req.system });
  return {
    timeoutSeconds: opts.timeoutSeconds,
    log,
    ...(opts.signal ? { signal: opts.signal } : {}),
    commonArgs: [
      // The product's settings, so the host's Nix configuration cannot break a build.
      ...productNixArgs(nixDir),
      // Nix's own limit on a build, so a hung builder is reported by Nix as
      // timed out even if it outlives the process-group kill.
      ...option('timeout', String(Math.ceil(opts.timeoutSeconds))),
      ...Object.entries(opts.nixOptions ?? {}).flatMap(([name, value]) => option(name, value)),
    ],
  };
}

async function evaluate(req: ImageRequest, nixDir: string, ctx: Context): Promise<Evaluated> {
  if (req.packages.length === 0) return { missing: [], failed: [], packages: [] };
  const phase: NixPhase = 'evaluate';
  const deadline = deadlineFor(ctx);
  const { srcType, srcArgs } = await sourceArguments(req, {
    timeoutSeconds: ctx.timeoutSeconds,
    deadline,
    log: ctx.log,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  const args = [
    '--eval', '--strict', '--json', '--read-write-mode',
    path.join(nixDir, 'resolve.nix'),
    '--argstr', 'packagesJson', JSON.stringify(req.packages),
    '--argstr', 'srcType', srcType,
    '--argstr', 'srcArgs', srcArgs,
    '--argstr', 'system', req.system,
    ...ctx.commonArgs,
  ];
  const result = await run('nix-instantiate', args, { ...runOptions(ctx, phase), deadline });
  if (result.exitCode !== 0) {
    throw new NixEvaluationError(`evaluating the package source failed (${describeExit(result)})`, result.logTail);
  }
  return parseEvaluated(result.stdout);
}

/** The (srcType, srcArgs) pair load-source.nix takes; srcArgs is JSON so it is passed as data. */
export async function sourceArguments(
  req: Pick<ImageRequest, 'source' | 'ref' | 'gitSpec'>,
  options: GitRefOptions,
): Promise<{ srcType: string; srcArgs: string }> {
  const { source } = req;
  switch (source.type) {
    case 'path':
      return { srcType: 'path', srcArgs: JSON.stringify({ path: path.resolve(source.path) }) };
    case 'channel':
      return {
        srcType: 'channel',
        srcArgs: JSON.stringify({ channel: source.channel, baseUrl: source.baseUrl.replace(/\/+$/, '') }),
      };
    case 'git': {
      const spec =
        req.gitSpec?.url === source.url
          ? req.gitSpec
          : await resolveGitRef(source.url, req.ref, { ...options, ...(source.trustedRefs ? { trustedRefs: source.trustedRefs } : {}) });
      return { srcType: 'git', srcArgs: JSON.stringify(spec) };
    }
  }
}

export function parseEvaluated(stdout: string): Evaluated {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch (cause) {
    throw new NixOutputError('nix-instantiate', 'not JSON', { cause });
  }
  const v = value as Partial<Evaluated> | null;
  const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (
    !v || typeof v !== 'object' || !isStrings(v.missing) || !isStrings(v.failed) || !Array.isArray(v.packages) ||
    !v.packages.every(
      (p) =>
        typeof p?.name === 'string' && isStrings(p.attrPath) && typeof p.drvPath === 'string' &&
        p.outputs !== null && typeof p.outputs === 'object' && Object.values(p.outputs).every((o) => typeof o === 'string'),
    )
  ) {
    throw new NixOutputError('nix-instantiate', 'resolve.nix result has an unexpected shape');
  }
  return v as Evaluated;
}

async function realise(evaluated: EvaluatedPackage[], ctx: Context): Promise<void> {
  const targets = unique(evaluated.flatMap((p) => Object.keys(p.outputs).map((o) => `${p.drvPath}!${o}`)));
  if (targets.length === 0) return;
  const phase: NixPhase = 'realise';
  const deadline = deadlineFor(ctx);
  const failedDrvs = new Set<string>();
  let timedOut = false;
  const result = await run(
    'nix-store',
    // --keep-going: build everything that can be built, so that every failing package is known at once.
    ['--realise', '--keep-going', ...ctx.commonArgs, ...targets],
    {
      ...runOptions(ctx, phase),
      deadline,
      onStderrLine: (line) => {
        const drv = failedDerivation(line);
        if (drv) failedDrvs.add(drv);
        if (/ timed out after \d+ seconds/.test(line)) timedOut = true;
      },
    },
  );
  if (result.exitCode === 0) return;
  // Nix's own timeout (exit status 101) fired before the process-group kill.
  if (timedOut || result.exitCode === 101) throw new NixTimeoutError(ctx.timeoutSeconds, phase, result.logTail);

  // With --keep-going, what is still missing afterwards is exactly what
  // failed, whether the package itself or one of its dependencies broke.
  const outPaths = unique(evaluated.flatMap((p) => Object.values(p.outputs)));
  const check = await run('nix-store', ['--check-validity', '--print-invalid', ...outPaths], {
    ...runOptions(ctx, phase),
    deadline,
  });
  const invalid = new Set(check.exitCode === 0 ? check.stdout.split('\n').filter(Boolean) : outPaths);
  // Empty when Nix failed without leaving anything unbuilt (a store or
  // database problem): then no package in particular is to blame.
  const failed = evaluated.filter((p) => Object.values(p.outputs).some((o) => invalid.has(o))).map((p) => p.name);
  ctx.log.warn('nix build failed', { packages: failed, failedDerivations: [...failedDrvs], exitCode: result.exitCode });
  throw new NixBuildError(unique(failed).sort(), result.logTail, [...failedDrvs].sort());
}

/** The derivation an error line of `nix-store --realise` blames, if any. */
export function failedDerivation(line: string): string | undefined {
  const patterns = [
    /builder for '([^']+\.drv)' failed/,
    /is required to build '([^']+\.drv)'/,
    /building of '([^'!]+\.drv)[^']*' .*timed out/,
    /hash mismatch in fixed-output derivation '([^']+\.drv)'/,
  ];
  for (const re of patterns) {
    const m = re.exec(line);
    if (m?.[1]) return m[1];
  }
  return undefined;
}

async function graph(outPaths: string[], ctx: Context): Promise<StorePath[]> {
  if (outPaths.length === 0) return [];
  const phase: NixPhase = 'graph';
  const result = await run(
    'nix',
    ['--extra-experimental-features', 'nix-command', 'path-info', '--json', '--recursive', ...ctx.commonArgs, ...outPaths],
    { ...runOptions(ctx, phase), deadline: deadlineFor(ctx) },
  );
  if (result.exitCode !== 0) {
    throw new NixOutputError('nix path-info', `${describeExit(result)}\n${result.logTail}`);
  }
  return parsePathInfo(result.stdout);
}

export function parsePathInfo(stdout: string): StorePath[] {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch (cause) {
    throw new NixOutputError('nix path-info', 'not JSON', { cause });
  }
  // Nix up to 2.18 prints an array of entries with a `path`; 2.19 and later an object keyed by
  // store path, with null for an invalid path.
  let entries: unknown[];
  if (Array.isArray(value)) entries = value;
  else if (value !== null && typeof value === 'object') {
    entries = Object.entries(value).map(([path, info]) =>
      info === null ? { path, valid: false } : { ...(info as Record<string, unknown>), path },
    );
  } else throw new NixOutputError('nix path-info', 'expected an array or an object keyed by store path');
  const paths = entries.map((entry: unknown): StorePath => {
    const e = entry as { path?: unknown; narSize?: unknown; narHash?: unknown; references?: unknown; valid?: unknown };
    if (typeof e.path !== 'string' || e.valid === false) {
      throw new NixOutputError('nix path-info', `invalid entry ${JSON.stringify(entry)}`);
    }
    if (typeof e.narSize !== 'number' || typeof e.narHash !== 'string' || !Array.isArray(e.references)) {
      throw new NixOutputError('nix path-info', `entry for ${e.path} lacks narSize, narHash or references`);
    }
    const self = e.path;
    const references = (e.references as unknown[]).filter((r): r is string => typeof r === 'string' && r !== self).sort();
    return { path: self, narSize: e.narSize, narHash: e.narHash, references };
  });
  return paths.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function runOptions(ctx: Context, phase: NixPhase): Omit<RunOptions, 'deadline'> {
  return { phase, timeoutSeconds: ctx.timeoutSeconds, log: ctx.log, ...(ctx.signal ? { signal: ctx.signal } : {}) };
}

function deadlineFor(ctx: Context): number {
  return performance.now() + ctx.timeoutSeconds * 1000;
}

function option(name: string, value: string): string[] {
  return ['--option', name, value];
}

function describeExit(result: RunResult): string {
  return result.exitCode !== null ? `exit status ${result.exitCode}` : `killed by ${result.signal}`;
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}
