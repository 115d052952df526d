// The serving certificate changes on disk while the registry runs: cert-manager renews it, the
// kubelet swaps a mounted Secret's files in place. This polls the two files (their contents: a
// swap of the kubelet's `..data` link keeps every modification time of the paths as they were)
// and hands a changed, valid pair to the server, which gives it to new handshakes while open
// connections keep the one they began with (https.Server.setSecureContext). A changed pair that
// is not valid (half written, a new certificate beside the old key) is logged once and the pair
// in use kept; polling goes on, so the pair is taken as soon as it is whole.
import { createHash } from 'node:crypto';
import { checkTlsPair, readTlsFiles, type TlsFiles, type TlsPair } from '../config/tls-pair.ts';
import type { Logger } from '../log/logger.ts';

/** How often the files are read: a renewal reaches new connections within about this. */
export const DEFAULT_TLS_POLL_MS = 2_000;

export interface TlsFileWatcherOptions {
  files: TlsFiles;
  /** The pair the server started with. */
  current: { cert: Buffer; key: Buffer };
  /** Puts a new pair into service; may throw, which refuses the pair. */
  apply: (pair: TlsPair) => void;
  log: Logger;
  intervalMs?: number;
}

export type TlsCheck = 'unchanged' | 'reloaded' | 'refused';

export class TlsFileWatcher {
  private readonly options: TlsFileWatcherOptions;
  private current: { cert: Buffer; key: Buffer };
  /** What was last refused (a digest of the files, or the read error): refused again silently. */
  private refused: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<TlsCheck> | undefined;

  constructor(options: TlsFileWatcherOptions) {
    this.options = options;
    this.current = options.current;
  }

  start(): this {
    this.timer ??= setInterval(() => void this.check(), this.options.intervalMs ?? DEFAULT_TLS_POLL_MS);
    // The server keeps the process alive; the watch never does on its own.
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look at the files; a look still under way is joined rather than doubled. */
  check(): Promise<TlsCheck> {
    this.checking ??= this.look().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async look(): Promise<TlsCheck> {
    const { files, log } = this.options;
    let candidate: { cert: Buffer; key: Buffer };
    try {
      candidate = await readTlsFiles(files);
    } catch (error) {
      return this.refuse(`read:${(error as Error).message}`, error);
    }
    if (candidate.cert.equals(this.current.cert) && candidate.key.equals(this.current.key)) {
      this.refused = undefined;
      return 'unchanged';
    }
    const digest = createHash('sha256').update(candidate.cert).update('\0').update(candidate.key).digest('hex');
    if (digest === this.refused) return 'refused';
    try {
      const summary = checkTlsPair(files, candidate.cert, candidate.key);
      this.options.apply({ ...candidate, summary });
      this.current = candidate;
      this.refused = undefined;
      log.info('serving a new TLS certificate', { certFile: files.certFile, keyFile: files.keyFile, certificate: summary });
      return 'reloaded';
    } catch (error) {
      return this.refuse(digest, error);
    }
  }

  private refuse(what: string, error: unknown): TlsCheck {
    if (what !== this.refused) {
      this.refused = what;
      const { files, log } = this.options;
      // The message names files and what is wrong with them, never their contents.
      log.warn('the TLS certificate files changed, but not to a usable pair: keeping the current certificate', {
        certFile: files.certFile,
        keyFile: files.keyFile,
        error: (error as Error).message,
      });
    }
    return 'refused';
  }
}
