// What /proc says about processes: which ones a process started, and whether one still runs.
import fs from 'node:fs';

/** A process, told apart from a later one that gets the same pid by its start time. */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

/** Fields of /proc/PID/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The running process with this pid; undefined once it has ended (a zombie has ended). */
export function identify(pid: number): ProcessIdentity | undefined {
  const fields = statFields(pid);
  // The state is the 3rd field, the start time the 22nd.
  if (!fields || fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return { pid, startTime: fields[19]! };
}

/** Whether that very process still runs. */
export function isRunning(process: ProcessIdentity): boolean {
  return identify(process.pid)?.startTime === process.startTime;
}

/** The direct children of a process, whichever of its threads started them. */
export function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tasks.flatMap((tid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
}

export function descendantsOf(pid: number): number[] {
  return childrenOf(pid).flatMap((child) => [child, ...descendantsOf(child)]);
}

export function commandLine(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Running processes other than this one whose command line contains `needle`, as `pid command line`. */
export function processesMatching(needle: string): string[] {
  return fs
    .readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
    .flatMap((entry) => {
      const pid = Number(entry);
      const line = commandLine(pid).join(' ');
      return line.includes(needle) && identify(pid) ? [`${pid} ${line}`] : [];
    });
}

/** For `eventually`: true once no process matches `needle`; until then it throws, listing them. */
export function noProcessMatching(needle: string): true {
  const left = processesMatching(needle);
  if (left.length > 0) throw new Error(`still running:\n${left.join('\n')}`);
  return true;
}
