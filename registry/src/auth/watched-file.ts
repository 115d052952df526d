// A small configuration file (htpasswd, the access policy) kept current while the registry runs:
// read and parsed at start (a bad file stops the start), then read again every couple of seconds
// and parsed when its bytes changed. Kubernetes updates mounted Secrets and ConfigMaps by swapping
// a symlink, which neither inotify on the file nor its mtime reliably shows; comparing the bytes
// of a file this small costs nothing. A new version that does not parse is logged, and the last
// good one stays in force.
import { readFile } from 'node:fs/promises';
import type { Logger } from '../log/logger.ts';

export const WATCH_INTERVAL_MS = 2_000;

export interface WatchedFileOptions<T> {
  path: string;
  /** What the file is, for messages (`the access policy`). */
  what: string;
  /** Throws when the text is not acceptable; its message is logged. */
  parse: (text: string) => T;
  log: Logger;
  intervalMs?: number;
}

export class WatchedFileError extends Error {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WatchedFileError';
    this.path = path;
  }
}

export class WatchedFile<T> {
  private value: T;
  private text: string;
  private readonly options: WatchedFileOptions<T>;
  private readonly timer: NodeJS.Timeout;
  private checking = false;

  /** Reads and parses the file; throws WatchedFileError when it cannot be read or parsed. */
  static async open<T>(options: WatchedFileOptions<T>): Promise<WatchedFile<T>> {
    let text: string;
    try {
      text = await readFile(options.path, 'utf8');
    } catch (error) {
      throw new WatchedFileError(options.path, `cannot read ${options.what} ${options.path}: ${(error as Error).message}`, { cause: error });
    }
    try {
      return new WatchedFile(options, text, options.parse(text));
    } catch (error) {
      throw new WatchedFileError(options.path, `${options.what} ${options.path} is not valid: ${(error as Error).message}`, { cause: error });
    }
  }

  private constructor(options: WatchedFileOptions<T>, text: string, value: T) {
    this.options = options;
    this.text = text;
    this.value = value;
    this.timer = setInterval(() => void this.check(), options.intervalMs ?? WATCH_INTERVAL_MS);
    this.timer.unref();
  }

  /** The last version that parsed. */
  get current(): T {
    return this.value;
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Reads the file again; resolves once a changed version is in force or refused. */
  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    const { path, what, log } = this.options;
    try {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (error) {
        // Between the two renames of a Secret update the file may be briefly absent.
        log.warn(`cannot read ${what}; the version read before stays in force`, { path, error: (error as Error).message });
        return;
      }
      if (text === this.text) return;
      try {
        this.value = this.options.parse(text);
        log.info(`${what} changed; the new version is in force`, { path });
      } catch (error) {
        log.error(`${what} changed but is not valid; the version read before stays in force`, { path, error: (error as Error).message });
      }
      // Either way this version was judged: it is not logged again on every poll.
      this.text = text;
    } finally {
      this.checking = false;
    }
  }
}
