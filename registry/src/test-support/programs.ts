// The one way the unit tests run programs (git, gzip, tar, mount, node). They run them to their
// end synchronously, which blocks the event loop and with it every timeout node:test has: a
// program that never ends would hang its test file for good. So each run is bounded, and killed
// outright when the bound passes (a SIGTERM may be ignored, and the call would wait on).
import { spawnSync } from 'node:child_process';

export interface Ran {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a program to its end; a non-zero exit is for the caller to judge. */
export function runSync(command: string, args: string[], options: RunOptions = {}): Ran {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const ran = spawnSync(command, args, {
    ...(options.input !== undefined ? { input: options.input } : {}),
    env: options.env ?? process.env,
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    maxBuffer: 64 << 20,
  });
  const code = (ran.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') throw new Error(`${command} is not installed (scripts/setup.sh installs what the tests need)`);
  if (code === 'ETIMEDOUT') throw new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms, and was killed`);
  if (ran.error) throw ran.error;
  return { status: ran.status, stdout: ran.stdout, stderr: ran.stderr.toString() };
}

/** Runs a program that must succeed; returns what it printed. */
export function outputOf(command: string, args: string[], options: RunOptions = {}): string {
  const ran = runSync(command, args, options);
  if (ran.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${ran.status ?? 'a signal'}:\n${ran.stderr}`);
  return ran.stdout.toString();
}
