// Starts one container process: a private mount namespace (and UTS namespace for the hostname)
// in which a small busybox script mounts the container's file system — overlay root for pulled
// images, a minimal /dev, volumes, /etc/hosts, the termination-message file — and then execs the
// program. Nothing is mounted in the host's namespace, so nothing needs unmounting: the mounts go
// when the namespace's last process does. A pulled image's program is started by a Perl helper
// (the host's perl-base) that chroots, enters the working directory, takes the container's
// uid/gid/groups and environment, and execs it — what runc does for a container process; exec
// probes enter the same way. Host-root (imageMap) programs run as root in the host's root.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { spawn } from '@nixery/test-support';

export const BUSYBOX = '/usr/bin/busybox';
export const UNSHARE = '/usr/bin/unshare';
export const SETPRIV = '/usr/bin/setpriv';
export const NSENTER = '/usr/bin/nsenter';
export const PERL = '/usr/bin/perl';

/** Who a pulled image's process runs as. */
export interface UserIdentity {
  uid: number;
  gid: number;
  /** supplementary groups (containerd puts the primary gid first) */
  groups: number[];
}

export const ROOT_USER: UserIdentity = { uid: 0, gid: 0, groups: [0] };

export interface BindMount {
  source: string;
  /** absolute path inside the container's root */
  target: string;
  readOnly: boolean;
  /** what to create at the target when it is missing */
  kind: 'dir' | 'file';
}

export interface LaunchSpec {
  argv: string[];
  env: Record<string, string>;
  /** inside the container's root */
  workingDir: string;
  hostname: string;
  /** a pulled image: its unpacked root file system, mounted copy-on-write at `root` */
  image?: { lower: string; upper: string; work: string; root: string };
  mounts: BindMount[];
  /** a pulled image's process identity (default root); host-root programs always run as root */
  user?: UserIdentity;
  /** a pulled image's root mounted read-only once the mounts are in place (readOnlyRootFilesystem) */
  readOnlyRoot?: boolean;
  /** no_new_privs for the process (allowPrivilegeEscalation: false) */
  noNewPrivileges?: boolean;
}

/** How an exec probe enters a pulled image's container: its root (as mounted in its mount namespace), working directory and identity. */
export interface ExecContext {
  root: string;
  workingDir: string;
  user: UserIdentity;
  noNewPrivileges?: boolean;
}

export interface Exit {
  exitCode: number;
  signal?: NodeJS.Signals;
}

export interface RunningProcess {
  pid: number;
  child: ChildProcess;
  /** resolves once the mounts are in place and the program is being executed; rejects with the set-up error */
  started: Promise<void>;
  exited: Promise<Exit>;
  /** signals the whole process group */
  kill(signal: NodeJS.Signals): void;
}

// Perl, run on the host before the chroot (POSIX is loaded at compile time), as
// `perl -e HELPER -- SYNC ROOT WD UID GID GROUPS N ENV×N ARGV…` (GROUPS comma-separated; SYNC an
// fd to report "ok" on just before exec, or -). It gets an empty environment, so that nothing of
// the container's (PERL5LIB, PERL5OPT, a locale the host lacks) affects Perl itself, and sets the
// container's for the program. Changing credentials clears the parent-death signal, so it is set
// again afterwards (prctl by syscall number, known for the architectures listed: perl-base has no
// syscall.ph).
const PERL_HELPER = `
use strict;
use POSIX ();
my ($sync, $root, $wd, $uid, $gid, $groups, $count) = splice(@ARGV, 0, 7);
my @env = splice(@ARGV, 0, $count);
my @argv = @ARGV;
sub fail { print STDERR "launch: $_[0]\n"; exit 127 }
my $parent = getppid();
chroot($root) or fail("chroot $root: $!");
chdir($wd) or fail("chdir $wd: $!");
my @groups = split(/,/, $groups);
@groups = ($gid) unless @groups;
$) = join(" ", $gid, @groups);
POSIX::setgid($gid) or fail("setgid $gid: $!");
POSIX::setuid($uid) or fail("setuid $uid: $!");
my @have = split(/ /, $));
shift @have;
my %have = map { $_ => 1 } @have;
my %want = map { $_ => 1 } @groups;
fail("switching to uid $uid gid $gid groups $groups left uid $< euid $> gid $( egid $)")
  unless $< == $uid && $> == $uid && $( == $gid && $) == $gid
  && join(",", sort keys %have) eq join(",", sort keys %want);
my %prctl = (x86_64 => 157, i686 => 172, i386 => 172, aarch64 => 167, riscv64 => 167, armv7l => 172);
my $nr = $prctl{(POSIX::uname())[4]};
if (defined $nr && $sync ne "-") {
  syscall($nr, 1, 9) == 0 or fail("prctl(PR_SET_PDEATHSIG): $!");
  exit 137 if getppid() != $parent;
}
%ENV = ();
for (@env) { my ($k, $v) = split(/=/, $_, 2); $ENV{$k} = $v; }
if ($sync ne "-") {
  open(my $fh, ">&=", $sync) or fail("sync fd $sync: $!");
  print $fh "ok\n";
  close($fh);
}
{ no warnings; exec { $argv[0] } @argv; }
fail("exec $argv[0]: $!");
`;

/** The helper's operands after SYNC ROOT WD: identity, environment, argv. */
function helperOperands(user: UserIdentity, env: Record<string, string>, argv: string[]): string[] {
  const entries = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return [String(user.uid), String(user.gid), user.groups.join(','), String(entries.length), ...entries, ...argv];
}

// The script runs as `sh -c SCRIPT launch HELPER <ops…> -- <root> <workdir> <hostname> <rest…>`:
// for the host root, <rest> is the argv; for an image root, `ro|rw` and the helper's operands.
// Ops: `overlay LOWER UPPER WORK ROOT`, `dev ROOT`, `proc ROOT`, `bind SRC DST ro|rw dir|file ROOT`.
// It (or the helper) reports "ok" on fd 3 just before exec, so a failure before that is a set-up failure.
/** An empty host directory each container mounts its new /dev on first (in its own mount namespace). */
const DEV_STAGING = '/run/nixery-k8s-dev-staging';

const SCRIPT = `
set -e
bb=${BUSYBOX}
helper="$1"; shift
while [ "$1" != "--" ]; do
  case "$1" in
    overlay)
      $bb mount -t overlay overlay -o "lowerdir=$2,upperdir=$3,workdir=$4" "$5"
      shift 5 ;;
    dev)
      # Built in a staging mount while the host's /dev is still visible (a container of the host
      # root gets its /dev over the host's), then moved into place. Its own devpts instance gives
      # it working ptys (Nix opens one for every build).
      d="$2/dev"
      s=${DEV_STAGING}
      $bb mkdir -p "$d" "$s"
      $bb mount -t tmpfs -o mode=755,nosuid tmpfs "$s"
      for n in null zero full random urandom tty; do
        $bb touch "$s/$n"
        $bb mount --bind "/dev/$n" "$s/$n"
      done
      $bb mkdir -p "$s/pts" "$s/shm"
      $bb mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$s/pts"
      $bb mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$s/shm"
      $bb ln -s /proc/self/fd "$s/fd"
      $bb ln -s /proc/self/fd/0 "$s/stdin"
      $bb ln -s /proc/self/fd/1 "$s/stdout"
      $bb ln -s /proc/self/fd/2 "$s/stderr"
      $bb ln -s pts/ptmx "$s/ptmx"
      $bb mount --move "$s" "$d"
      shift 2 ;;
    proc)
      $bb mkdir -p "$2/proc" "$2/sys"
      $bb mount -t proc proc "$2/proc"
      $bb mount --rbind /sys "$2/sys"
      shift 2 ;;
    bind)
      if [ "$5" = dir ]; then $bb mkdir -p "$3"; else $bb mkdir -p "$($bb dirname "$3")"; [ -e "$3" ] || $bb touch "$3"; fi
      # Mount on the resolved path (e.g. /var/run is a link to /run on Debian): the read-only
      # remount finds the mount by that name. A link must not lead out of the container root.
      t=$($bb readlink -f "$3")
      case "$t" in "$6"/*|"$6") ;; *) echo "launch: mount target $3 resolves to $t, outside the container root" >&2; exit 1 ;; esac
      $bb mount --bind "$2" "$t"
      if [ "$4" = ro ]; then $bb mount -o remount,bind,ro "$t"; fi
      shift 6 ;;
    *) echo "launch: unknown op $1" >&2; exit 1 ;;
  esac
done
shift
root="$1"; wd="$2"; $bb hostname "$3"; shift 3
if [ -n "$root" ]; then
  $bb mkdir -p "$root$wd"
  # Read-only as runc makes it: the root mount only; /dev, /proc, volumes and /etc/hosts stay as they are.
  if [ "$1" = ro ]; then $bb mount -o remount,bind,ro "$root"; fi
  shift
  exec ${PERL} -e "$helper" -- 3 "$root" "$wd" "$@"
fi
echo ok >&3
exec 3>&-
exec ${UNSHARE} --wd="$wd" -- "$@"
`;

/** The script's operands for a spec: the order matters (root, then /dev, then volumes, parents first). */
export function launchOps(spec: LaunchSpec): string[] {
  const root = spec.image?.root ?? '';
  const ops: string[] = [];
  if (spec.image) ops.push('overlay', spec.image.lower, spec.image.upper, spec.image.work, spec.image.root);
  ops.push('dev', root);
  if (spec.image) ops.push('proc', root);
  const mounts = [...spec.mounts].sort((a, b) => depth(a.target) - depth(b.target));
  for (const m of mounts) ops.push('bind', m.source, `${root}${m.target}`, m.readOnly ? 'ro' : 'rw', m.kind, root);
  const workingDir = spec.workingDir || '/';
  ops.push('--', root, workingDir, spec.hostname);
  if (spec.image) ops.push(spec.readOnlyRoot ? 'ro' : 'rw', ...helperOperands(spec.user ?? ROOT_USER, spec.env, spec.argv));
  else ops.push(...spec.argv);
  return ops;
}

function depth(p: string): number {
  return path.posix.normalize(p).split('/').filter(Boolean).length;
}

export function launch(spec: LaunchSpec, output: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): RunningProcess {
  // setpriv's parent-death signal: if the agent dies, its containers die with it. A pulled
  // image's environment travels as operands of the helper, which sets it for the program.
  const child = spawn(
    UNSHARE,
    [
      '--mount', '--uts', '--propagation', 'private', '--',
      SETPRIV, '--pdeathsig', 'KILL', ...(spec.noNewPrivileges && spec.image ? ['--no-new-privs'] : []), '--',
      BUSYBOX, 'sh', '-c', SCRIPT, 'launch', PERL_HELPER, ...launchOps(spec),
    ],
    { env: spec.image ? {} : spec.env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'], detached: true },
  );
  const setupErrors: Buffer[] = [];
  let ready = false;
  child.stdout!.pipe(output.stdout, { end: false });
  child.stderr!.on('data', (chunk: Buffer) => {
    if (!ready) setupErrors.push(chunk);
  });
  child.stderr!.pipe(output.stderr, { end: false });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const exited = new Promise<Exit>((resolve) => {
    child.once('error', () => resolve({ exitCode: 128 }));
    child.once('exit', (code, signal) => {
      // A container ends with its main process: what it left behind goes too (runc does this by
      // tearing down the PID namespace), and its output is drained before the exit is reported.
      killGroup(child.pid, 'SIGKILL');
      const result: Exit = signal ? { exitCode: 128 + (SIGNAL_NUMBERS[signal] ?? 0), signal } : { exitCode: code ?? 0 };
      const timer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, 2000);
      void closed.then(() => {
        clearTimeout(timer);
        resolve(result);
      });
    });
  });
  const started = new Promise<void>((resolve, reject) => {
    const sync = child.stdio[3] as NodeJS.ReadableStream;
    sync.on('data', () => {
      ready = true;
      resolve();
    });
    sync.on('error', () => {});
    child.once('error', (error) => reject(error));
    void exited.then(() => {
      if (!ready) reject(new Error(Buffer.concat(setupErrors).toString().trim() || 'container set-up failed'));
    });
  });
  started.catch(() => {});
  return {
    pid: child.pid ?? -1,
    child,
    started,
    exited,
    kill(signal) {
      killGroup(child.pid, signal);
    },
  };
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

/**
 * Follows `file` inside `root`, symlinks resolved relative to that root (as the kernel will after
 * chroot): the resolved part, and what remains from the first component that does not exist.
 */
async function walkInRoot(root: string, file: string): Promise<{ resolved: string; missing: string[] }> {
  let parts = file.split('/').filter(Boolean);
  let current = '/';
  for (let hops = 0; parts.length > 0 && hops < 64; ) {
    const part = parts.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      current = path.posix.dirname(current);
      continue;
    }
    const candidate = path.posix.join(current, part);
    let stat;
    try {
      stat = await fs.lstat(path.join(root, candidate));
    } catch {
      return { resolved: current, missing: [part, ...parts] };
    }
    if (stat.isSymbolicLink()) {
      hops++;
      const target = await fs.readlink(path.join(root, candidate));
      parts = [...target.split('/').filter(Boolean), ...parts];
      if (target.startsWith('/')) current = '/';
      continue;
    }
    current = candidate;
  }
  return { resolved: current, missing: [] };
}

/** Where `file` resolves inside `root`, or undefined when it does not exist. */
export async function resolveInRoot(root: string, file: string): Promise<string | undefined> {
  const { resolved, missing } = await walkInRoot(root, file);
  return missing.length ? undefined : resolved;
}

/**
 * `target` with the symlinks that exist inside `root` resolved relative to that root (the rest of
 * the path appended as it is): an image's absolute links, such as Debian's /var/run → /run, must
 * not lead a mount onto the host, as a container runtime's secure join ensures.
 */
export async function resolveMountTarget(root: string, target: string): Promise<string> {
  const { resolved, missing } = await walkInRoot(root, target);
  return path.posix.join(resolved, ...missing);
}

/** The program `argv0` names, looked up on PATH as execvp would but inside `root`. */
export async function findExecutable(root: string, argv0: string, pathVariable: string | undefined): Promise<string | undefined> {
  const candidates = argv0.includes('/') ? [argv0] : (pathVariable ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean).map((d) => path.posix.join(d, argv0));
  for (const candidate of candidates) {
    const resolved = await resolveInRoot(root, path.posix.isAbsolute(candidate) ? candidate : path.posix.join('/', candidate));
    if (resolved === undefined) continue;
    try {
      const stat = await fs.stat(path.join(root, resolved));
      if (stat.isFile() && (stat.mode & 0o111) !== 0) return candidate;
    } catch {
      // dangling
    }
  }
  return undefined;
}

/**
 * Runs `argv` inside a running container's mount and UTS namespaces (exec probes): for a host-root
 * container in its root and working directory, as root; for a pulled image (`context`) through the
 * helper, in its root and working directory as its user, as runc exec would.
 */
export function execIn(pid: number, argv: string[], env: Record<string, string>, timeoutMs: number, context?: ExecContext): Promise<{ exitCode: number; output: string }> {
  return new Promise((resolve) => {
    const args = context
      ? ['-t', String(pid), '-m', '-u', '--', ...(context.noNewPrivileges ? [SETPRIV, '--no-new-privs', '--'] : []), PERL, '-e', PERL_HELPER, '--', '-', context.root, context.workingDir, ...helperOperands(context.user, env, argv)]
      : ['-t', String(pid), '-m', '-u', '-r', '-w', '--', ...argv];
    const child = spawn(NSENTER, args, { env: context ? {} : env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const collect = (c: Buffer) => {
      if (output.length < 10_000) output += c.toString();
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
      output += `\ncommand timed out after ${timeoutMs} ms`;
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ exitCode: 126, output: String(error) });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ exitCode: code ?? (signal ? 137 : 1), output });
    });
  });
}
