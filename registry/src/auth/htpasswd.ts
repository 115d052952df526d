// Users from htpasswd files (NIXERY_HTPASSWD_FILE, comma-separated: the operator adds its own pull
// user's file to the user's). Only bcrypt entries are accepted ($2a$, $2b$, $2y$, as
// `htpasswd -B` writes them): the older schemes (MD5 apr1, SHA-1, crypt, plain text) are too weak
// to keep, and a file holding one is refused with a message naming the line. Files are re-read
// when they change (watched-file.ts).
import { createHash } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { BoundedMap } from '../cache/ttl-cache.ts';
import type { Logger } from '../log/logger.ts';
import type { BeforeCostlyCheck, UserDirectory } from './identity.ts';
import { WatchedFile } from './watched-file.ts';

const BCRYPT = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/;
/**
 * A bcrypt check costs tens of milliseconds by design; clients that send Basic credentials with
 * every request (docker-style) would pay it every time. A successful check is remembered this
 * long, keyed by a digest of the credentials and the entry (so a changed password ends it).
 */
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_ENTRIES = 1024;

export class HtpasswdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HtpasswdError';
  }
}

/** User name → bcrypt hash; throws HtpasswdError for a line that is not a bcrypt entry. */
export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HtpasswdError(`line ${index + 1}: expected user:hash`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!BCRYPT.test(hash)) {
      throw new HtpasswdError(`line ${index + 1} (user ${JSON.stringify(user)}): only bcrypt entries ($2y$…, htpasswd -B) are accepted, this one is ${schemeOf(hash)}`);
    }
    if (users.has(user)) throw new HtpasswdError(`line ${index + 1}: user ${JSON.stringify(user)} appears twice`);
    users.set(user, hash);
  });
  return users;
}

function schemeOf(hash: string): string {
  if (hash.startsWith('$apr1$')) return 'MD5 (apr1)';
  if (hash.startsWith('{SHA}')) return 'SHA-1';
  if (/^\$2[aby]\$/.test(hash)) return 'a malformed bcrypt hash';
  if (hash.startsWith('$')) return `an unsupported scheme (${hash.split('$')[1] ?? ''})`;
  return 'crypt or plain text';
}

export interface HtpasswdOptions {
  log: Logger;
  intervalMs?: number;
  now?: () => number;
}

/** The users of one or more htpasswd files; the first file naming a user decides. */
export class HtpasswdUsers implements UserDirectory {
  private readonly files: WatchedFile<Map<string, string>>[];
  private readonly verified = new BoundedMap<string, number>(VERIFIED_ENTRIES);
  private readonly now: () => number;

  /** Reads every file; throws (WatchedFileError) when one cannot be read or holds a non-bcrypt entry. */
  static async open(paths: readonly string[], options: HtpasswdOptions): Promise<HtpasswdUsers> {
    const files: WatchedFile<Map<string, string>>[] = [];
    try {
      for (const path of paths) {
        files.push(await WatchedFile.open({ path, what: 'the htpasswd file', parse: parseHtpasswd, log: options.log, ...(options.intervalMs ? { intervalMs: options.intervalMs } : {}) }));
      }
    } catch (error) {
      for (const file of files) file.close();
      throw error;
    }
    return new HtpasswdUsers(files, options.now ?? (() => performance.now()));
  }

  private constructor(files: WatchedFile<Map<string, string>>[], now: () => number) {
    this.files = files;
    this.now = now;
  }

  /** `beforeCostlyCheck` runs before each bcrypt compare (not for a remembered success) and may throw to prevent it. */
  async verify(username: string, password: string, beforeCostlyCheck?: BeforeCostlyCheck): Promise<'valid' | 'invalid' | 'unknown'> {
    const hash = this.files.map((f) => f.current.get(username)).find((h) => h !== undefined);
    if (hash === undefined) return 'unknown';
    const key = createHash('sha256').update(JSON.stringify([username, password, hash])).digest('base64');
    const until = this.verified.get(key);
    if (until !== undefined && until > this.now()) return 'valid';
    beforeCostlyCheck?.();
    if (!(await bcrypt.compare(password, hash))) return 'invalid';
    this.verified.set(key, this.now() + VERIFIED_TTL_MS);
    return 'valid';
  }

  /** Reads every file again now (tests; the files are also polled). */
  async check(): Promise<void> {
    await Promise.all(this.files.map((f) => f.check()));
  }

  close(): void {
    for (const file of this.files) file.close();
  }
}
