// The pod runner's primitive without any API server: processes in private mount namespaces.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { eventually, identify, isRunning, spawn, stopChild, waitForOutput, within } from '@nixery/test-support';
import { BUSYBOX, execIn, findExecutable, launch, resolveInRoot, resolveMountTarget, type ExecContext, type LaunchSpec } from './launcher.ts';

/** Every program these tests launch ends within seconds. */
const EXIT_MS = 30_000;

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return { stream, text: () => text };
}

async function run(spec: LaunchSpec): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const out = collect();
  const err = collect();
  const proc = launch(spec, { stdout: out.stream, stderr: err.stream });
  const exit = await within(EXIT_MS, `${spec.argv.join(' ')} to exit`, proc.exited);
  return { exitCode: exit.exitCode, stdout: out.text(), stderr: err.text() };
}

describe('launcher: a container process in a private mount namespace', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-launcher-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('on the host root: sees its volume, hosts file and termination-message file; the host sees none of them', async () => {
    const volume = path.join(dir, 'volume');
    const mountPoint = path.join(dir, 'mountpoint');
    const hosts = path.join(dir, 'hosts');
    const termination = path.join(dir, 'termination-log');
    await fs.mkdir(volume);
    await fs.mkdir(mountPoint);
    await fs.writeFile(path.join(volume, 'greeting'), 'from the volume\n');
    await fs.writeFile(hosts, '127.96.0.7\tweb.shop.svc.cluster.local web\n');
    await fs.writeFile(termination, '');
    const hostHostsBefore = await fs.readFile('/etc/hosts', 'utf8');

    const result = await run({
      argv: [BUSYBOX, 'sh', '-c', `cat ${mountPoint}/greeting; cat /etc/hosts; hostname; pwd; echo done > /dev/termination-log; ls /dev`],
      env: { PATH: '/usr/bin:/bin' },
      workingDir: dir,
      hostname: 'web-abc12',
      mounts: [
        { source: volume, target: mountPoint, readOnly: false, kind: 'dir' },
        { source: hosts, target: '/etc/hosts', readOnly: true, kind: 'file' },
        { source: termination, target: '/dev/termination-log', readOnly: false, kind: 'file' },
      ],
    });
    assert.equal(result.exitCode, 0, result.stderr);
    const lines = result.stdout.split('\n');
    assert.equal(lines[0], 'from the volume');
    assert.equal(lines[1], '127.96.0.7\tweb.shop.svc.cluster.local web');
    assert.equal(lines[2], 'web-abc12');
    assert.equal(lines[3], dir);
    assert.ok(lines.includes('null') && lines.includes('termination-log'), 'a minimal /dev of its own');
    assert.equal(await fs.readFile(termination, 'utf8'), 'done\n');

    assert.deepEqual(await fs.readdir(mountPoint), [], 'the host does not see the bind mount');
    assert.equal(await fs.readFile('/etc/hosts', 'utf8'), hostHostsBefore);
    await assert.rejects(fs.access('/dev/termination-log'));
    assert.notEqual(os.hostname(), 'web-abc12');
  });

  it('on the host root: real devices in its /dev, and ptys of its own (Nix needs one per build)', async () => {
    const script = [
      '[ -c /dev/null ] && echo null-is-a-device',
      'test "$(head -c 16 /dev/urandom | wc -c)" -eq 16 && echo urandom-gives-bytes',
      '[ -c /dev/pts/ptmx ] && echo own-devpts',
      // Opening the pty master through /dev/ptmx, as posix_openpt does.
      'exec 3<>/dev/ptmx && echo ptmx-opens',
    ].join('; ');
    const result = await run({ argv: [BUSYBOX, 'sh', '-c', script], env: { PATH: '/usr/bin:/bin' }, workingDir: '/', hostname: 'dev-test', mounts: [] });
    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual(result.stdout.trim().split('\n'), ['null-is-a-device', 'urandom-gives-bytes', 'own-devpts', 'ptmx-opens']);
  });

  it('in an image root: copy-on-write overlay, chroot, working directory, read-only mounts', async () => {
    const lower = path.join(dir, 'image');
    await fs.mkdir(path.join(lower, 'bin'), { recursive: true });
    await fs.mkdir(path.join(lower, 'etc'));
    await fs.copyFile(BUSYBOX, path.join(lower, 'bin/busybox'));
    await fs.chmod(path.join(lower, 'bin/busybox'), 0o755);
    await fs.symlink('/bin/busybox', path.join(lower, 'bin/sh'));
    await fs.writeFile(path.join(lower, 'etc/motd'), 'image\n');
    const config = path.join(dir, 'config');
    await fs.mkdir(config);
    await fs.writeFile(path.join(config, 'mode'), 'fast');
    const container = path.join(dir, 'container');
    for (const d of ['upper', 'work', 'root']) await fs.mkdir(path.join(container, d), { recursive: true });

    const result = await run({
      argv: ['sh', '-c', 'busybox pwd; cat /etc/motd; cat /config/mode; echo; echo changed > /etc/motd; cat /etc/motd; busybox touch /config/x 2>&1 || echo read-only; busybox ls /proc/self/ >/dev/null && echo proc'],
      env: { PATH: '/bin' },
      workingDir: '/srv/app',
      hostname: 'img',
      image: { lower, upper: path.join(container, 'upper'), work: path.join(container, 'work'), root: path.join(container, 'root') },
      mounts: [{ source: config, target: '/config', readOnly: true, kind: 'dir' }],
    });
    assert.equal(result.exitCode, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.deepEqual([lines[0], lines[1], lines[2], lines[3]], ['/srv/app', 'image', 'fast', 'changed']);
    assert.ok(result.stdout.includes('read-only'));
    assert.ok(result.stdout.includes('proc'));
    assert.equal(await fs.readFile(path.join(lower, 'etc/motd'), 'utf8'), 'image\n', 'the image stays untouched');
    assert.equal(await fs.readFile(path.join(container, 'upper/etc/motd'), 'utf8'), 'changed\n');
    assert.deepEqual(await fs.readdir(path.join(container, 'root')), [], 'the overlay is not mounted on the host');
  });

  it('reports a set-up failure as such, before the program ran', async () => {
    const proc = launch(
      { argv: ['true'], env: {}, workingDir: '/', hostname: 'x', mounts: [{ source: path.join(dir, 'missing'), target: path.join(dir, 'mp'), readOnly: false, kind: 'dir' }] },
      { stdout: new PassThrough(), stderr: new PassThrough() },
    );
    await assert.rejects(proc.started, /missing/);
    assert.notEqual((await within(EXIT_MS, 'the failed launch to exit', proc.exited)).exitCode, 0);
  });

  it('signals the whole process group and reports the signal', async () => {
    const out = collect();
    const proc = launch(
      { argv: [BUSYBOX, 'sh', '-c', `${BUSYBOX} sleep 30 & echo started; wait`], env: {}, workingDir: '/', hostname: 'x', mounts: [] },
      { stdout: out.stream, stderr: new PassThrough() },
    );
    await proc.started;
    await eventually('the shell to start its sleep', async () => out.text().includes('started') || undefined, 10_000, 20);
    proc.kill('SIGKILL');
    const exit = await within(EXIT_MS, 'the killed group to exit', proc.exited);
    assert.deepEqual(exit, { exitCode: 137, signal: 'SIGKILL' });
  });
});

/** A minimal image root: busybox and links for the applets the tests use. */
async function busyboxRoot(lower: string): Promise<void> {
  await fs.mkdir(path.join(lower, 'bin'), { recursive: true });
  await fs.mkdir(path.join(lower, 'etc'));
  await fs.copyFile(BUSYBOX, path.join(lower, 'bin/busybox'));
  await fs.chmod(path.join(lower, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'cat', 'grep', 'id', 'pwd', 'sleep', 'stat', 'touch', 'env']) await fs.symlink('/bin/busybox', path.join(lower, 'bin', applet));
}

async function containerDirs(parent: string, name: string): Promise<NonNullable<LaunchSpec['image']> & { dir: string }> {
  const dir = path.join(parent, name);
  for (const d of ['upper', 'work', 'root']) await fs.mkdir(path.join(dir, d), { recursive: true });
  return { dir, lower: '', upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), root: path.join(dir, 'root') };
}

describe('launcher: who a pulled image runs as', () => {
  let dir: string;
  let lower: string;
  const user = { uid: 1234, gid: 2345, groups: [2345, 3456] };
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-user-'));
    lower = path.join(dir, 'image');
    await busyboxRoot(lower);
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('takes the uid, gid and groups, enters the working directory, has exactly its environment; read-only root and no_new_privs on request', async () => {
    const volume = path.join(dir, 'volume');
    await fs.mkdir(volume);
    await fs.chown(volume, 0, 3456);
    await fs.chmod(volume, 0o2770);
    const c = await containerDirs(dir, 'c1');
    const script = [
      'grep -E "^(Uid|Gid|Groups|NoNewPrivs):" /proc/self/status',
      'pwd',
      'echo "FOO=$FOO HOME=$HOME"',
      'env | grep -c PERL || true',
      'touch /data/by-user && stat -c "%u:%g" /data/by-user',
      'touch /etc/x 2>/dev/null || echo root-read-only',
    ].join('; ');
    const result = await run({
      argv: ['sh', '-c', script],
      env: { PATH: '/bin', HOME: '/home/app', FOO: 'bar baz' },
      workingDir: '/work',
      hostname: 'u',
      image: { ...c, lower },
      mounts: [{ source: volume, target: '/data', readOnly: false, kind: 'dir' }],
      user,
      readOnlyRoot: true,
      noNewPrivileges: true,
    });
    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual(result.stdout.trim().split('\n').map((l) => l.replace(/\s+/g, ' ').trim()), [
      'Uid: 1234 1234 1234 1234',
      'Gid: 2345 2345 2345 2345',
      'Groups: 2345 3456',
      'NoNewPrivs: 1',
      '/work',
      'FOO=bar baz HOME=/home/app',
      '0',
      '1234:3456',
      'root-read-only',
    ]);
    assert.equal((await fs.stat(path.join(volume, 'by-user'))).uid, 1234, 'the file is the user\'s on the host too');
  });

  it('without a user, root with only group 0; without readOnlyRoot, a writable root', async () => {
    const c = await containerDirs(dir, 'c2');
    const result = await run({
      argv: ['sh', '-c', 'grep -E "^(Uid|Gid|Groups|NoNewPrivs):" /proc/self/status; touch /etc/x && echo root-writable'],
      env: { PATH: '/bin' },
      workingDir: '/',
      hostname: 'r',
      image: { ...c, lower },
      mounts: [],
    });
    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual(result.stdout.trim().split('\n').map((l) => l.replace(/\s+/g, ' ').trim()), ['Uid: 0 0 0 0', 'Gid: 0 0 0 0', 'Groups: 0', 'NoNewPrivs: 0', 'root-writable']);
  });

  it('exec probes run in the container root and working directory, as its user, with its environment', async () => {
    const c = await containerDirs(dir, 'c3');
    const out = collect();
    const proc = launch(
      { argv: ['sleep', '30'], env: { PATH: '/bin' }, workingDir: '/srv', hostname: 'p', image: { ...c, lower }, mounts: [], user, noNewPrivileges: true },
      { stdout: out.stream, stderr: out.stream },
    );
    try {
      await within(EXIT_MS, 'the container to start', proc.started);
      const context: ExecContext = { root: c.root, workingDir: '/srv', user, noNewPrivileges: true };
      const result = await execIn(proc.pid, ['sh', '-c', 'id -u; id -g; id -G; pwd; echo $FOO; grep NoNewPrivs /proc/self/status; ls /bin/busybox'], { PATH: '/bin', FOO: 'probe' }, 10_000, context);
      assert.equal(result.exitCode, 0, result.output);
      assert.deepEqual(result.output.trim().split('\n').map((l) => l.replace(/\s+/g, ' ').trim()), ['1234', '2345', '2345 3456', '/srv', 'probe', 'NoNewPrivs: 1', '/bin/busybox']);
      const failing = await execIn(proc.pid, ['sh', '-c', 'exit 3'], { PATH: '/bin' }, 10_000, context);
      assert.equal(failing.exitCode, 3);
    } finally {
      proc.kill('SIGKILL');
      await within(EXIT_MS, 'the container to exit', proc.exited);
    }
  });

  it('a container whose user was switched still dies with the process that launched it (parent-death signal set again)', async () => {
    const c = await containerDirs(dir, 'c4');
    const spec: LaunchSpec = { argv: ['sleep', '300'], env: { PATH: '/bin' }, workingDir: '/', hostname: 'd', image: { ...c, lower }, mounts: [], user };
    const launcherUrl = new URL('./launcher.ts', import.meta.url).href;
    const code = [
      `const { launch } = await import(${JSON.stringify(launcherUrl)});`,
      `const proc = launch(${JSON.stringify(spec)}, { stdout: process.stdout, stderr: process.stderr });`,
      'await proc.started;',
      'console.log(`container ${proc.pid}`);',
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const parent = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let container: ReturnType<typeof identify>;
    try {
      const line = await waitForOutput(parent, /^container \d+$/, EXIT_MS);
      container = identify(Number(line.split(' ')[1]));
      assert.ok(container, 'the container runs');
      process.kill(parent.pid!, 'SIGKILL');
      await eventually('the container to die with its parent', () => (isRunning(container!) ? undefined : true), 10_000, 50);
    } finally {
      if (container! && isRunning(container)) process.kill(container.pid, 'SIGKILL');
      await stopChild(parent, 'SIGKILL');
    }
  });
});

describe('finding the program inside a root', () => {
  it('follows absolute symlinks relative to the root and searches PATH', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-root-'));
    try {
      await fs.mkdir(path.join(root, 'store/x/bin'), { recursive: true });
      await fs.mkdir(path.join(root, 'bin'));
      await fs.writeFile(path.join(root, 'store/x/bin/hello'), '', { mode: 0o755 });
      await fs.symlink('/store/x/bin/hello', path.join(root, 'bin/hello'));
      assert.equal(await resolveInRoot(root, '/bin/hello'), '/store/x/bin/hello');
      assert.equal(await findExecutable(root, 'hello', '/usr/bin:/bin'), '/bin/hello');
      assert.equal(await findExecutable(root, '/bin/hello', undefined), '/bin/hello');
      assert.equal(await findExecutable(root, 'nothere', '/bin'), undefined);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});

describe('mount targets inside an image root', () => {
  it("resolve the image's own symlinks inside it (Debian's /var/run → /run) and keep what does not exist yet", async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-node-root-'));
    try {
      await fs.mkdir(path.join(root, 'var'));
      await fs.mkdir(path.join(root, 'run'));
      await fs.symlink('/run', path.join(root, 'var/run'));
      await fs.symlink('../etc-real', path.join(root, 'etc'));
      assert.equal(await resolveMountTarget(root, '/var/run/secrets/kubernetes.io/serviceaccount'), '/run/secrets/kubernetes.io/serviceaccount');
      assert.equal(await resolveMountTarget(root, '/etc/hosts'), '/etc-real/hosts');
      assert.equal(await resolveMountTarget(root, '/data/x'), '/data/x');
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
