// The one owner of the processes the e2e code starts: test files, their support, and the test
// cluster's node agent (pods) all spawn through here, so that nothing outlives what started it.
// A leftover keeps its test file's process alive (its pipes hold the event loop) and the suite
// with it, or outlives the suite. So when a test file's tests are done, passed, failed or timed
// out, whatever still runs is stopped; and whatever is left when this process exits, however it
// exits, is killed outright.
import * as childProcess from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import { after } from 'node:test';
import { descendantsOf, identify, isRunning, type ProcessIdentity } from './proc.ts';

/** How long a process gets after SIGTERM before SIGKILL: the registry needs up to 3 s to stop Nix. */
const GRACE_MS = 10_000;
/** SIGKILL cannot be ignored: a process it does not end within this is stuck in the kernel. */
const KILLED_WITHIN_MS = 5_000;

/** Running children, and whether each leads a process group of its own (it was started detached). */
const running = new Map<ChildProcess, { group: boolean }>();

/** node:child_process's spawn, tracked. Detached, a child's whole process group is stopped. */
export const spawn = ((...args: unknown[]) => {
  const options = args.find((a): a is childProcess.SpawnOptions => typeof a === 'object' && a !== null && !Array.isArray(a));
  return track((childProcess.spawn as (...a: unknown[]) => ChildProcess)(...args), options?.detached === true);
}) as typeof childProcess.spawn;

/** node:child_process's execFile with text output, tracked: its own timeout signals the child once, and only the child. */
export function execFile(
  file: string,
  args: readonly string[],
  options: childProcess.ExecFileOptions,
  callback: (error: childProcess.ExecFileException | null, stdout: string, stderr: string) => void,
): ChildProcess {
  return track(childProcess.execFile(file, args, { ...options, encoding: 'utf8' }, callback), false);
}

function track<T extends ChildProcess>(child: T, group: boolean): T {
  // Without a pid it never started; its 'error' event says why.
  if (child.pid === undefined) return child;
  running.set(child, { group });
  child.once('exit', () => running.delete(child));
  return child;
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves true once the child has exited, false if it has not within `ms`. */
export function exitedWithin(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

function signal(child: ChildProcess, name: NodeJS.Signals): void {
  try {
    process.kill(running.get(child)?.group ? -child.pid! : child.pid!, name);
  } catch {
    // gone already
  }
}

/**
 * What a child started, wherever it runs now: Nix, for one, runs in process groups of its own that
 * a signal to the child's group does not reach, and is orphaned when the child dies first.
 */
function family(child: ChildProcess): ProcessIdentity[] {
  return descendantsOf(child.pid!).flatMap((pid) => identify(pid) ?? []);
}

function killLeftovers(processes: ProcessIdentity[]): void {
  for (const p of processes) {
    if (!isRunning(p)) continue;
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * Stops a child (its group, if it leads one): `signalName`, SIGKILL if it is still running after
 * the grace period, and SIGKILL for what it started and left behind.
 */
export async function stopChild(child: ChildProcess, signalName: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (hasExited(child)) return;
  const started = family(child);
  signal(child, signalName);
  if (signalName !== 'SIGKILL' && !(await exitedWithin(child, GRACE_MS))) {
    started.push(...family(child));
    signal(child, 'SIGKILL');
  }
  const ended = await exitedWithin(child, KILLED_WITHIN_MS);
  killLeftovers(started);
  if (!ended) throw new Error(`${child.spawnfile} (pid ${child.pid}) did not end after SIGKILL`);
}

/** Stops every child still running. */
export async function stopChildren(): Promise<void> {
  await Promise.all([...running.keys()].map((child) => stopChild(child)));
}

/** No time to wait: on the way out of this process. */
function killChildrenNow(): void {
  for (const child of running.keys()) {
    const started = family(child);
    signal(child, 'SIGKILL');
    killLeftovers(started);
  }
}

process.on('exit', killChildrenNow);

/** `node --test` itself: it runs the test files in this process (--test-isolation=none). */
const isRunner = process.execArgv.includes('--test');
/** A test file's own process (the runner starts one per file). */
const isTestFile = /\.test\.[cm]?[jt]s$/.test(process.argv[1] ?? '');

// Only where tests run: in a program a test started that shares this code (the cluster harness,
// the benchmarks), node:test would start reporting.
if (isRunner || isTestFile) after(stopChildren, { timeout: GRACE_MS + 2 * KILLED_WITHIN_MS });

// The runner passes SIGINT and SIGTERM on to its test files when it is stopped (Ctrl-C, a CI time
// limit). It exits through 'exit' itself; a test file would by default end without that event.
if (isTestFile && !isRunner) {
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(name, () => process.exit(128 + os.constants.signals[name]));
  }
}
