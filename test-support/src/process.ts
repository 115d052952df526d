// Running real programs from the suites. A missing tool is a failure with the install hint, never
// a skipped check. Every program starts through children.ts, which stops what is left.
import type { ChildProcess, ExecFileException } from 'node:child_process';
import { execFile, exitedWithin, spawn, stopChild } from './children.ts';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** What the program reads on its standard input (none: it reads end of file). */
  input?: string;
  /** Default 120 s; then the program is stopped. */
  timeoutMs?: number;
}

export interface RunResult {
  /** The exit code; 1 for a program stopped by a signal or the time limit. */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program to its end and resolves with its exit code and output, whatever the code. A
 * program that is not installed fails with the install hint.
 */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return ran(command, args, options).then(({ result }) => result);
}

/** Runs a program that must succeed; a non-zero exit or the time limit fails with its output. */
export async function runOk(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const { result, error, timeout } = await ran(command, args, options);
  if (!error) return result;
  const why = error.killed ? `did not finish within ${timeout} ms` : `failed (${String(error.code)})`;
  throw new Error(`${command} ${args.join(' ')} ${why}:\n${result.stderr}${result.stdout}`, { cause: error });
}

function ran(command: string, args: string[], options: RunOptions): Promise<{ result: RunResult; error: ExecFileException | null; timeout: number }> {
  const timeout = options.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { env: options.env ?? process.env, cwd: options.cwd, timeout, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error?.code === 'ENOENT') return reject(new Error(`${command} is not installed; scripts/setup.sh installs it (see README)`));
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ result: { code, stdout, stderr }, error, timeout });
    });
    // A program that exits without reading its input closes the pipe first: EPIPE then only
    // means it did not want it, and its exit status tells the rest.
    child.stdin?.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') reject(error);
    });
    child.stdin?.end(options.input ?? '');
  });
}

/** Waits for a child's output to contain a line matching `pattern`, or fails when it exits first. */
export function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const line = seen.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) {
        cleanup();
        resolve(line);
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`process exited (${code ?? signal}) before printing ${pattern}:\n${seen.slice(-4000)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}:\n${seen.slice(-4000)}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', onExit);
  });
}

/** Waits for a child to exit by itself, failing after `timeoutMs`. */
export async function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (!(await exitedWithin(child, timeoutMs))) throw new Error(`${child.spawnfile} (pid ${child.pid}) did not exit within ${timeoutMs} ms`);
}

export { execFile, spawn, stopChild };
