// Runs one Nix (or git) program: argv only, never a shell; its own process
// group, so that a timeout or an abort can stop it together with everything
// it started; stderr kept as a bounded tail for error reports.
import { spawn } from 'node:child_process';
import os from 'node:os';
import type { Logger } from '../log/logger.ts';
import { NixSpawnError, NixTimeoutError, type NixPhase } from './errors.ts';

export interface RunOptions {
  phase: NixPhase;
  /** When to give up, as a `performance.now()` time; null for never. */
  deadline: number | null;
  /** Reported in NixTimeoutError; the configured limit, not the time left. */
  timeoutSeconds: number;
  signal?: AbortSignal;
  log: Logger;
  env?: NodeJS.ProcessEnv;
  /** Sees every stderr line, for callers that pick facts out of Nix's messages. */
  onStderrLine?: (line: string) => void;
  /** Nice value for the program (and what it starts); default the process-wide one (setProgramNice). */
  nice?: number;
}

let programNice: number | undefined;

/**
 * Runs every program from now on at `nice`: a server's builds (Nix, git) then leave a core to the
 * event loop, which serves while they run (measured with the bench's pulls suite: warm manifest
 * p99 while two cold builds realise and pack 14-18 ms instead of 22-25 ms). Nix's builders inherit
 * it: they are forked after the program starts.
 */
export function setProgramNice(nice: number | undefined): void {
  programNice = nice;
}

export interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  logTail: string;
}

/** How long Nix gets after SIGTERM to stop its builders before everything is killed outright. */
const TERM_GRACE_MS = 3000;
/** After the process exits, how long to wait for its pipes to close (a leftover child may hold them). */
const CLOSE_GRACE_MS = 1000;
const TAIL_LINES = 40;

/** Keeps the last `lines` lines of a stream, each cut to a sane length. */
export class LogTail {
  private readonly lines: string[] = [];
  private partial = '';
  private readonly max: number;
  private readonly maxLineLength: number;
  private readonly onLine: ((line: string) => void) | undefined;

  constructor(max = TAIL_LINES, onLine?: (line: string) => void, maxLineLength = 2000) {
    this.max = max;
    this.onLine = onLine;
    this.maxLineLength = maxLineLength;
  }

  push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    // A line without a newline must not grow without bound.
    if (this.partial.length > this.maxLineLength * 4) {
      parts.push(this.partial);
      this.partial = '';
    }
    for (const part of parts) this.add(part);
  }

  end(): void {
    if (this.partial) this.add(this.partial);
    this.partial = '';
  }

  toString(): string {
    return this.lines.join('\n');
  }

  private add(raw: string): void {
    // Nix decorates some messages with ANSI colours; carriage returns come from progress output.
    const line = raw.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, '');
    this.onLine?.(line);
    this.lines.push(line.length > this.maxLineLength ? line.slice(0, this.maxLineLength) + ' …' : line);
    if (this.lines.length > this.max) this.lines.shift();
  }
}

export function run(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const { phase, deadline, signal, log } = options;
  return new Promise<RunResult>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const started = performance.now();
    log.debug('running', { command, args, phase });
    const child = spawn(command, args, {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });

    const nice = options.nice ?? programNice;
    if (nice !== undefined && child.pid !== undefined) {
      try {
        // Right after the spawn, before the program has forked anything of its own.
        os.setPriority(child.pid, nice);
      } catch (error) {
        log.warn('cannot lower the priority of a program', { command, nice, error: (error as Error).message });
      }
    }
    const stdout: Buffer[] = [];
    const tail = new LogTail(TAIL_LINES, options.onStderrLine);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => tail.push(chunk));

    let stopReason: { kind: 'timeout' } | { kind: 'abort'; reason: unknown } | null = null;
    let killTimer: NodeJS.Timeout | undefined;
    let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let settled = false;

    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    };

    // SIGTERM first: Nix then stops its builders itself (they run in their
    // own sessions, out of reach of a signal to this process group).
    const stop = (reason: NonNullable<typeof stopReason>) => {
      if (stopReason || exited) return;
      stopReason = reason;
      log.warn('stopping nix', { command, phase, reason: reason.kind });
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), TERM_GRACE_MS);
      killTimer.unref();
    };

    const remaining = deadline === null ? null : Math.max(0, deadline - performance.now());
    const timer = remaining === null ? undefined : setTimeout(() => stop({ kind: 'timeout' }), remaining);
    const onAbort = () => stop({ kind: 'abort', reason: signal?.reason });
    signal?.addEventListener('abort', onAbort, { once: true });

    const finish = () => {
      if (settled || !exited) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      signal?.removeEventListener('abort', onAbort);
      // After a stop, whatever is left in the group goes too. Not after a
      // normal exit: the group id is a dead pid then, free to be reused.
      if (stopReason) killGroup('SIGKILL');
      tail.end();
      const logTail = tail.toString();
      log.debug('finished', { command, phase, exitCode: exited.code, signal: exited.signal, ms: Math.round(performance.now() - started) });
      if (stopReason?.kind === 'timeout') reject(new NixTimeoutError(options.timeoutSeconds, phase, logTail));
      else if (stopReason?.kind === 'abort') reject(stopReason.reason);
      else resolve({ exitCode: exited.code, signal: exited.signal, stdout: Buffer.concat(stdout).toString('utf8'), logTail });
    };

    child.on('error', (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      reject(new NixSpawnError(command, { cause: error }));
    });
    child.on('exit', (code, sig) => {
      exited = { code, signal: sig };
      setTimeout(finish, CLOSE_GRACE_MS).unref();
    });
    child.on('close', finish);
  });
}
