// What exactly a package source is right now, as a string that changes whenever its content can.
// The manifest cache is keyed by it, so a moving source (a branch, a channel name, an edited
// local path) is never answered with an image built from an older state.
import { createHash, type Hash } from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { PackageSource } from '../config/package-source.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { isCommitHash, resolveGitRef, type GitSpec } from '../nix/git-ref.ts';
import { BoundedMap } from '../cache/ttl-cache.ts';

export interface Fingerprint {
  /** Stable identity of the source's current content; undefined when it cannot be known (never cached). */
  key?: string;
  /** For git: the ref and commit the tag resolved to, so Nix evaluates exactly what was fingerprinted. */
  gitSpec?: GitSpec;
}

export interface FingerprintOptions {
  timeoutSeconds: number;
  log?: Logger;
  fetch?: typeof fetch;
}

export async function fingerprintSource(source: PackageSource, tag: string, options: FingerprintOptions): Promise<Fingerprint> {
  switch (source.type) {
    case 'git': {
      const spec = await resolveGitRef(source.url, tag, {
        phase: 'evaluate',
        deadline: performance.now() + options.timeoutSeconds * 1000,
        timeoutSeconds: options.timeoutSeconds,
        log: options.log ?? silentLogger,
        ...(source.trustedRefs ? { trustedRefs: source.trustedRefs } : {}),
      });
      return { key: `git:${source.url}#${spec.rev}`, gitSpec: spec };
    }
    case 'path':
      return { key: `path:${source.path}#${await hashTree(source.path)}` };
    case 'channel': {
      const url = `${source.baseUrl}/${source.channel}.tar.gz`;
      if (isCommitHash(source.channel)) return { key: `channel:${url}` };
      const version = await remoteVersion(url, options);
      return version === undefined ? {} : { key: `channel:${url}#${version}` };
    }
  }
}

/**
 * The channel tarball's validator: a channel name moves, and the server's ETag (or, failing that,
 * Last-Modified with the length) says whether it moved. Without either, the channel is uncacheable.
 */
async function remoteVersion(url: string, options: FingerprintOptions): Promise<string | undefined> {
  const response = await (options.fetch ?? fetch)(url, {
    method: 'HEAD',
    redirect: 'follow',
    signal: AbortSignal.timeout(options.timeoutSeconds * 1000),
  });
  if (!response.ok) throw new ChannelUnavailableError(url, response.status);
  const etag = response.headers.get('etag');
  if (etag) return `etag:${etag}`;
  const modified = response.headers.get('last-modified');
  if (modified) return `modified:${modified}:${response.headers.get('content-length') ?? ''}`;
  return undefined;
}

export class ChannelUnavailableError extends Error {
  readonly code = 'CHANNEL_UNAVAILABLE';
  readonly url: string;
  readonly status: number;
  constructor(url: string, status: number) {
    super(`the channel tarball ${url} answered HTTP ${status}`);
    this.name = 'ChannelUnavailableError';
    this.url = url;
    this.status = status;
  }
}

// File hashes are remembered by identity and change time, so re-hashing an unchanged nixpkgs
// checkout costs a walk of stat calls, not a read of every file. Each walk keeps only the files
// it saw, so the memo is as big as the tree (a few roots at most), not as big as its history.
const fileHashes = new BoundedMap<string, Map<string, { stamp: string; hash: string }>>(8);

/**
 * Entries examined between yields to the event loop. The walk uses synchronous lstat/readdir:
 * measured on a 40,000-file tree, a promise per stat cost ~480 ms of CPU per walk, the
 * synchronous calls ~120 ms; slicing keeps each stretch without I/O callbacks to about a millisecond.
 */
const SLICE = 256;

interface Walk {
  hash: Hash;
  known: Map<string, { stamp: string; hash: string }>;
  seen: Map<string, { stamp: string; hash: string }>;
  budget: number;
}

/** A content hash of a directory tree: names, types, executable bits, file contents, link targets. */
export async function hashTree(root: string): Promise<string> {
  const walk: Walk = { hash: createHash('sha256'), known: fileHashes.get(root) ?? new Map(), seen: new Map(), budget: SLICE };
  await hashEntry(walk, root, '');
  fileHashes.set(root, walk.seen);
  return walk.hash.digest('hex');
}

async function hashEntry(walk: Walk, absolute: string, relative: string): Promise<void> {
  if (--walk.budget <= 0) {
    walk.budget = SLICE;
    await yieldToEventLoop();
  }
  const stat = fsSync.lstatSync(absolute, { bigint: true });
  if (stat.isDirectory()) {
    walk.hash.update(`d ${relative}\0`);
    const names = fsSync.readdirSync(absolute).sort();
    for (const name of names) {
      // Nix's own state next to a checkout is not part of the package set.
      if (relative === '' && (name === '.git' || name === 'result')) continue;
      await hashEntry(walk, path.join(absolute, name), relative === '' ? name : `${relative}/${name}`);
    }
  } else if (stat.isSymbolicLink()) {
    walk.hash.update(`l ${relative}\0${fsSync.readlinkSync(absolute)}\0`);
  } else if (stat.isFile()) {
    const stamp = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
    let known = walk.known.get(absolute);
    if (known?.stamp !== stamp) {
      // Changed files are rare and may be big: read them without blocking.
      known = { stamp, hash: createHash('sha256').update(await fs.readFile(absolute)).digest('hex') };
    }
    walk.seen.set(absolute, known);
    walk.hash.update(`f ${relative}\0${(stat.mode & 0o111n) !== 0n ? 'x' : '-'}${known.hash}\0`);
  }
}
