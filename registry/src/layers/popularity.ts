// Nixery's popularity data (popcount): a JSON object mapping a store path name
// (the path without `/nix/store/<hash>-`) to how many store paths in the
// channel reference it. Only relative order matters to the layering, but a
// malformed document would silently regroup every image, so it is rejected.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** Keyed by store path name without `/nix/store/<hash>-`, as in Nixery's popularity data. */
export type Popularity = ReadonlyMap<string, number>;

export interface LoadPopularityOptions {
  fetch?: typeof fetch;
  /** For http(s) only: the whole request, body included. */
  timeoutMs?: number;
}

export const DEFAULT_POPULARITY_TIMEOUT_MS = 30_000;

export class PopularityError extends Error {
  readonly code = 'POPULARITY_INVALID';
  /** Without credentials or query string, which may hold a signature. */
  readonly url: string;
  readonly problem: string;
  constructor(url: string, problem: string, options?: ErrorOptions) {
    const shown = redactUrl(url);
    super(`popularity data from ${shown}: ${problem}`, options);
    this.name = 'PopularityError';
    this.url = shown;
    this.problem = problem;
  }
}

const STORE_PATH_PREFIX = /^\/nix\/store\/[0-9a-z]{32}-/;

/** `/nix/store/<hash>-glibc-2.38` → `glibc-2.38`; anything else is returned as it is. */
export function storePathName(path: string): string {
  return path.replace(STORE_PATH_PREFIX, '');
}

/** No URL (or an empty one, as an unset environment variable often arrives) means no data: every path rates 1. */
export async function loadPopularity(url: string | undefined, opts: LoadPopularityOptions = {}): Promise<Popularity> {
  if (url === undefined || url === '') return new Map();
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new PopularityError(url, 'not a valid URL', { cause });
  }
  let text: string;
  switch (parsed.protocol) {
    case 'file:':
      text = await readFromFile(url, parsed);
      break;
    case 'http:':
    case 'https:':
      text = await readFromHttp(url, opts);
      break;
    default:
      throw new PopularityError(url, `unsupported URL scheme ${JSON.stringify(parsed.protocol)} (expected file:, http: or https:)`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (cause) {
    throw new PopularityError(url, `not valid JSON: ${messageOf(cause)}`, { cause });
  }
  return parsePopularity(document, url);
}

/** Validates an already-parsed popularity document; `url` only names the source in errors. */
export function parsePopularity(document: unknown, url: string): Popularity {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    const kind = document === null ? 'null' : Array.isArray(document) ? 'an array' : typeof document;
    throw new PopularityError(url, `expected a JSON object mapping store path names to counts, got ${kind}`);
  }
  const result = new Map<string, number>();
  for (const [name, value] of Object.entries(document)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new PopularityError(url, `value for ${JSON.stringify(name)} must be a non-negative number, got ${JSON.stringify(value)}`);
    }
    result.set(name, value);
  }
  return result;
}

async function readFromFile(url: string, parsed: URL): Promise<string> {
  try {
    return await readFile(fileURLToPath(parsed), 'utf8');
  } catch (cause) {
    throw new PopularityError(url, `cannot read file: ${messageOf(cause)}`, { cause });
  }
}

async function readFromHttp(url: string, opts: LoadPopularityOptions): Promise<string> {
  const doFetch = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_POPULARITY_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await doFetch(url, { signal, redirect: 'follow' });
    if (!response.ok) {
      // The body is not needed; cancelling it frees the connection.
      await response.body?.cancel().catch(() => undefined);
      throw new PopularityError(url, `HTTP ${response.status} ${response.statusText}`.trimEnd());
    }
    return await response.text();
  } catch (cause) {
    if (cause instanceof PopularityError) throw cause;
    if (signal.aborted) throw new PopularityError(url, `timed out after ${timeoutMs} ms`, { cause });
    throw new PopularityError(url, `request failed: ${messageOf(cause)}`, { cause });
  }
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    const auth = u.username || u.password ? '***@' : '';
    const host = u.protocol === 'file:' ? '' : u.host;
    return `${u.protocol}//${auth}${host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return url;
  }
}

function messageOf(error: unknown): string {
  if (error instanceof Error) {
    // undici hides the useful part (ECONNREFUSED, …) in `cause`.
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return error.message + cause;
  }
  return String(error);
}
