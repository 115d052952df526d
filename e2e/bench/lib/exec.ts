// Running programs for the benchmarks: timed one-shot commands and daemons whose output goes
// straight to a log file (never through this process, which must not compete for the CPU).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface Ran {
  ms: number;
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** performance.now() when the process was spawned and when it exited. */
  startedAt: number;
  endedAt: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  input?: string;
  /** Keep at most this many bytes of stdout (default 16 MiB); stderr keeps its last 64 KiB. */
  maxStdout?: number;
  onStderrLine?: (line: string, at: number) => void;
}

/** Runs a program to its end; never throws for a non-zero exit (check `code`). */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let partial = '';
    const maxStdout = options.maxStdout ?? 16 << 20;
    child.stdout!.on('data', (c: Buffer) => {
      if (stdout.length < maxStdout) stdout += c.toString();
    });
    child.stderr!.on('data', (c: Buffer) => {
      const text = c.toString();
      stderr = (stderr + text).slice(-65536);
      if (options.onStderrLine) {
        const at = performance.now();
        partial += text;
        const lines = partial.split('\n');
        partial = lines.pop()!;
        for (const line of lines) options.onStderrLine(line, at);
      }
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject((error as NodeJS.ErrnoException).code === 'ENOENT' ? new Error(`${command} is not installed (scripts/setup.sh installs it)`) : error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const endedAt = performance.now();
      resolve({ ms: endedAt - startedAt, code, signal, stdout, stderr, startedAt, endedAt });
    });
  });
}

/** Like run, but a non-zero exit is an error naming the command and its stderr. */
export async function runOk(command: string, args: string[], options: RunOptions = {}): Promise<Ran> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ').slice(0, 300)} exited with ${result.code ?? result.signal}:\n${result.stderr.slice(-3000)}`);
  }
  return result;
}

export function bash(script: string, options: RunOptions = {}): Promise<Ran> {
  return runOk('bash', ['-euo', 'pipefail', '-c', script], options);
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

const daemons = new Set<Daemon>();

export interface Daemon {
  name: string;
  child: ChildProcess;
  logFile: string;
  logTail(): string;
  stop(): Promise<void>;
}

/** Starts a long-running program with its output in `logFile`; `ready` is polled until true. */
export async function startDaemon(
  name: string,
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; logFile: string; ready: () => Promise<boolean>; timeoutMs?: number },
): Promise<Daemon> {
  const fd = fs.openSync(options.logFile, 'a');
  const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['ignore', fd, fd], detached: true });
  fs.closeSync(fd);
  let failed: Error | undefined;
  child.on('error', (error) => {
    failed = (error as NodeJS.ErrnoException).code === 'ENOENT' ? new Error(`${command} is not installed (scripts/setup.sh installs it)`) : error;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const daemon: Daemon = {
    name,
    child,
    logFile: options.logFile,
    logTail: () => tail(options.logFile),
    async stop() {
      daemons.delete(daemon);
      if (child.exitCode !== null || child.signalCode !== null) return;
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  daemons.add(daemon);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    if (failed) throw failed;
    if (child.exitCode !== null || child.signalCode !== null) {
      daemons.delete(daemon);
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail(options.logFile)}`);
    }
    if (await options.ready().catch(() => false)) return daemon;
    if (Date.now() > deadline) {
      await daemon.stop();
      throw new Error(`${name} was not ready after ${options.timeoutMs ?? 60_000} ms:\n${tail(options.logFile)}`);
    }
    await sleep(50);
  }
}

/** Stops every daemon still running (on the way out, also after an error). */
export async function stopAllDaemons(): Promise<void> {
  await Promise.all([...daemons].map((d) => d.stop()));
}

function tail(file: string): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-4000);
  } catch {
    return '';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function httpOk(url: string, init: RequestInit = {}): Promise<boolean> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
  await response.body?.cancel();
  return response.status < 500;
}

export function mkdirp(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export async function which(tool: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const candidate = path.join(dir, tool);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Runs `fn` over `items` with at most `limit` at once; results in input order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
