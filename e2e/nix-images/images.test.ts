// nix/images: the expressions that build the project's own container images. nixpkgs is not
// available here, so the images are not built; instead every expression is parsed, evaluated
// against fake-pkgs.nix (dockerTools.buildLayeredImage returns its arguments), and what the
// images would contain is checked against what the programs need at run time. The node_modules
// selection (npm-lock.nix) is checked against npm's own reading of package-lock.json, and the
// program layout is recreated from the working tree and started with Node.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { constants as fsConstants, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runOk } from '@nixery/test-support';

const here = import.meta.dirname;
const repo = path.resolve(here, '../..');
const imagesDir = path.join(repo, 'nix/images');
const npmLockNix = path.join(imagesDir, 'npm-lock.nix');
const lockFile = path.join(repo, 'package-lock.json');
const rootVersion = (JSON.parse(await fs.readFile(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version;

const FAKE = '/nix/store/00000000000000000000000000000000-';
const fake = (attr: string) => `${FAKE}fake-${attr}`;
const NODE_24 = [fake('nodejs-slim_24'), fake('nodejs_24')];

interface Tarball {
  path: string;
  name: string;
  version: string;
  url: string;
  integrity: string;
  hasInstallScript: boolean;
}
interface Layout {
  workspaces: string[];
  tarballs: Tarball[];
  links: { path: string; target: string }[];
}
interface ProgramLayout {
  workspaces: string[];
  workspaceFiles: string[];
  nodeModules: string[];
  links: { path: string; target: string }[];
  nixDir: boolean;
}
interface ImageArgs {
  name: string;
  tag: string;
  created: string;
  contents: string[];
  includeNixDB?: boolean;
  /** the owner of the files packed in the layers (dockerTools' default: root) */
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  extraCommands: string;
  config: {
    Entrypoint: string[];
    Cmd?: string[];
    Env: string[];
    User?: string;
    WorkingDir?: string;
    ExposedPorts?: Record<string, unknown>;
    Labels?: Record<string, string>;
  };
}

/** nix-instantiate --eval --strict --json, from this folder, with the stand-in nixpkgs. */
async function evalImages<T>(attr: string, extra: string[] = []): Promise<T> {
  const { stdout } = await runOk(
    'nix-instantiate',
    ['--eval', '--strict', '--json', path.relative(here, imagesDir), '-A', attr, '--arg', 'pkgs', 'import ./fake-pkgs.nix', ...extra],
    { cwd: here, timeoutMs: 60_000 },
  );
  return JSON.parse(stdout) as T;
}

/** npm-lock.nix's `kind` (build or runtime) of `workspaces` for a lockfile given as JSON text or a file. */
async function evalLock(kind: 'build' | 'runtime', workspaces: string[], lock: { file: string } | { json: unknown }): Promise<Layout> {
  const read = 'file' in lock ? 'builtins.readFile lockSource' : 'lockSource';
  const { stdout } = await runOk(
    'nix-instantiate',
    [
      '--eval', '--strict', '--json', '--expr',
      `{ lib, lockSource, workspacesJson }: (import lib { lock = builtins.fromJSON (${read}); }).${kind} (builtins.fromJSON workspacesJson)`,
      '--argstr', 'lib', npmLockNix,
      '--argstr', 'lockSource', 'file' in lock ? lock.file : JSON.stringify(lock.json),
      '--argstr', 'workspacesJson', JSON.stringify(workspaces),
    ],
    { cwd: here, timeoutMs: 60_000 },
  );
  return JSON.parse(stdout) as Layout;
}

/** The installed packages npm itself finds for a workspace in package-lock.json (no node_modules read). */
async function npmRuntime(workspace: string): Promise<string[]> {
  const { stdout } = await runOk('npm', ['ls', '--package-lock-only', '--omit=dev', '--all', '--parseable', '-w', workspace], { cwd: repo });
  return stdout
    .split('\n')
    .filter((l) => l.startsWith(repo + path.sep))
    .map((l) => path.relative(repo, l))
    .filter((l) => l.startsWith('node_modules/') && l !== `node_modules/@nixery/${workspace}`)
    .sort();
}

function envOf(image: ImageArgs): Map<string, string> {
  return new Map(image.config.Env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

/** Runs an image's extraCommands (they run in the customisation layer's root) in an empty directory. */
async function runExtraCommands(image: ImageArgs): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nix-images-root-'));
  cleanup.push(dir);
  await runOk('bash', ['-euo', 'pipefail', '-c', image.extraCommands], { cwd: dir });
  return dir;
}

/** The program derivation's script does what its `layout` (which the tests below read) says. */
function assertScriptInstalls(script: string, layout: ProgramLayout): void {
  const copied = [...script.matchAll(/^copyPackage '([^']+)'$/gm)].map((m) => m[1]);
  assert.deepEqual(copied, layout.nodeModules, 'every node_modules entry of the layout is copied, and nothing else');
  for (const l of layout.links) {
    assert.ok(script.includes(`ln -sr "$dest/${l.target}" "$dest/${l.path}"`), `links ${l.path} to ${l.target}`);
  }
  for (const ws of layout.workspaces) {
    assert.match(script, new RegExp(`^mkdir -p \\$dest/${ws}$`, 'm'), `copies the ${ws} workspace`);
  }
  assert.match(script, new RegExp(`^for f in ${layout.workspaceFiles.join(' ')}; do$`, 'm'));
  assert.equal(/\/nix \$dest\/nix$/m.test(script), layout.nixDir, 'copies nix/ exactly when the layout says so');
}

const cleanup: string[] = [];
after(async () => {
  for (const d of cleanup) await fs.rm(d, { recursive: true, force: true });
});

describe('nix/images expressions', () => {
  it('every expression parses', async () => {
    const files = [
      ...(await fs.readdir(imagesDir)).filter((f) => f.endsWith('.nix')).map((f) => path.join(imagesDir, f)),
      path.join(here, 'fake-pkgs.nix'),
    ];
    for (const name of ['default.nix', 'registry.nix', 'operator.nix', 'program.nix', 'npm-lock.nix']) {
      assert.ok(files.includes(path.join(imagesDir, name)), `nix/images/${name} exists`);
    }
    for (const file of files) await runOk('nix-instantiate', ['--parse', file]);
  });
});

describe('npm-lock.nix: node_modules from package-lock.json', () => {
  it('gives every package the build needs a registry URL and its sha512 hash from the lockfile', async () => {
    const lock = JSON.parse(await fs.readFile(lockFile, 'utf8')) as { packages: Record<string, { version?: string; integrity?: string }> };
    const build = await evalLock('build', ['registry', 'operator'], { file: lockFile });
    // test-support is a development dependency of the registry's tests; the image's build links
    // only registry and operator, and compiles no test.
    assert.deepEqual(build.workspaces, ['operator', 'registry', 'test-support']);
    assert.ok(build.tarballs.length > 100);
    for (const t of build.tarballs) {
      const entry = lock.packages[t.path];
      assert.ok(entry, `${t.path} is in the lockfile`);
      assert.equal(t.version, entry.version);
      const base = t.name.replace(/^@[^/]+\//, '');
      assert.equal(t.url, `https://registry.npmjs.org/${t.name}/-/${base}-${t.version}.tgz`);
      assert.match(t.integrity, /^sha512-[A-Za-z0-9+/]+=*$/);
      assert.ok(entry.integrity?.split(/\s+/).includes(t.integrity), `${t.path}: the lockfile's own hash`);
    }
    const paths = build.tarballs.map((t) => t.path);
    for (const p of ['node_modules/typescript', 'node_modules/@types/node', 'node_modules/zod', 'node_modules/@kubernetes/client-node']) {
      assert.ok(paths.includes(p), `the build has ${p}`);
    }
    assert.deepEqual(build.tarballs.filter((t) => t.hasInstallScript).map((t) => t.path), ['node_modules/fs-xattr']);
    assert.deepEqual(build.links, [
      { path: 'node_modules/@nixery/registry', target: 'registry' },
      { path: 'node_modules/@nixery/test-support', target: 'test-support' },
    ]);
  });

  for (const workspace of ['registry', 'operator']) {
    it(`selects exactly the packages npm installs for the ${workspace} without devDependencies`, async () => {
      const runtime = await evalLock('runtime', [workspace], { file: lockFile });
      const mine = [...runtime.tarballs.map((t) => t.path), ...runtime.links.map((l) => l.path)].sort();
      assert.deepEqual(mine, await npmRuntime(workspace));
      const paths = runtime.tarballs.map((t) => t.path);
      assert.ok(!paths.includes('node_modules/typescript'));
      assert.ok(!paths.includes('node_modules/@types/express'));
      assert.ok(paths.includes('node_modules/fs-xattr'), 'the registry workspace (imported by the operator too) needs fs-xattr');
    });
  }

  it('the operator brings the registry workspace it imports as @nixery/registry', async () => {
    const runtime = await evalLock('runtime', ['operator'], { file: lockFile });
    assert.deepEqual(runtime.workspaces, ['operator', 'registry']);
    assert.deepEqual(runtime.links, [{ path: 'node_modules/@nixery/registry', target: 'registry' }]);
  });

  const synthetic = {
    lockfileVersion: 3,
    packages: {
      '': { name: 'root', workspaces: ['app'], devDependencies: { dev1: '^1' } },
      app: { name: '@x/app', version: '1.0.0', dependencies: { a: '^1', '@s/b': '^2', alias: 'npm:real-name@^3' }, optionalDependencies: { opt: '^1' } },
      'node_modules/@x/app': { resolved: 'app', link: true },
      'node_modules/a': { version: '1.0.0', integrity: 'sha1-AAAA sha512-BBBB', dependencies: { c: '^1' } },
      'node_modules/a/node_modules/c': { version: '1.5.0', integrity: 'sha512-C15' },
      'node_modules/c': { version: '2.0.0', integrity: 'sha512-C20' },
      'node_modules/@s/b': {
        version: '2.1.0', integrity: 'sha512-B', dependencies: { c: '^2' },
        peerDependencies: { p: '*', q: '*' }, peerDependenciesMeta: { q: { optional: true } },
      },
      'node_modules/p': { version: '1.0.0', integrity: 'sha512-P', peer: true },
      'node_modules/alias': { name: 'real-name', version: '3.0.0', integrity: 'sha512-R' },
      'node_modules/opt': { version: '1.0.0', integrity: 'sha512-O', optional: true, os: ['darwin'] },
      'node_modules/dev1': { version: '1.0.0', integrity: 'sha512-D', dev: true, resolved: 'https://example.org/dev1.tgz' },
    },
  };

  it('resolves as Node does: nested first, scoped names, aliases, required peers, the platform of optional packages', async () => {
    const runtime = await evalLock('runtime', ['app'], { json: synthetic });
    assert.deepEqual(runtime.workspaces, ['app']);
    assert.deepEqual(
      runtime.tarballs.map((t) => [t.path, t.url, t.integrity]),
      [
        ['node_modules/@s/b', 'https://registry.npmjs.org/@s/b/-/b-2.1.0.tgz', 'sha512-B'],
        ['node_modules/a', 'https://registry.npmjs.org/a/-/a-1.0.0.tgz', 'sha512-BBBB'],
        ['node_modules/a/node_modules/c', 'https://registry.npmjs.org/c/-/c-1.5.0.tgz', 'sha512-C15'],
        ['node_modules/alias', 'https://registry.npmjs.org/real-name/-/real-name-3.0.0.tgz', 'sha512-R'],
        ['node_modules/c', 'https://registry.npmjs.org/c/-/c-2.0.0.tgz', 'sha512-C20'],
        ['node_modules/p', 'https://registry.npmjs.org/p/-/p-1.0.0.tgz', 'sha512-P'],
      ],
    );
    const build = await evalLock('build', ['app'], { json: synthetic });
    assert.deepEqual(build.tarballs.find((t) => t.path === 'node_modules/dev1')?.url, 'https://example.org/dev1.tgz', 'a resolved URL is kept');
  });

  it('refuses a lockfile it cannot honour, naming the package', async () => {
    const missing = structuredClone(synthetic);
    (missing.packages.app.dependencies as Record<string, string>).gone = '^1';
    await assert.rejects(evalLock('runtime', ['app'], { json: missing }), /app needs gone, which the lockfile does not install/);

    const devReached = structuredClone(synthetic);
    (devReached.packages['node_modules/c'] as Record<string, unknown>).dev = true;
    await assert.rejects(evalLock('runtime', ['app'], { json: devReached }), /marks node_modules\/c as a development dependency/);

    const git = structuredClone(synthetic);
    (git.packages['node_modules/a'] as Record<string, unknown>).resolved = 'git+ssh://git@example.org/a.git#abc';
    await assert.rejects(evalLock('runtime', ['app'], { json: git }), /node_modules\/a comes from 'git\+ssh:.*only registry tarballs/);
  });
});

describe('the registry image (ghcr.io/nixery-operator/nixery)', () => {
  let image: ImageArgs;
  let program: string;
  let layout: ProgramLayout;
  let programScript: string;
  before(async () => {
    image = await evalImages<ImageArgs>('registry');
    program = await evalImages<string>('registryProgram');
    layout = await evalImages<ProgramLayout>('registryProgram.layout');
    programScript = await evalImages<string>('registryProgram.fake.args.script');
  });

  it('is a reproducible layered image named and tagged from package.json', () => {
    assert.equal(image.name, 'ghcr.io/nixery-operator/nixery');
    assert.equal(image.tag, rootVersion);
    assert.equal(image.created, '1970-01-01T00:00:01Z');
    assert.equal(image.config.Labels?.['org.opencontainers.image.version'], rootVersion);
    assert.ok(program.endsWith(`-nixery-registry-${rootVersion}`));
  });

  it('runs registry/bin/nixery.js with Node.js 24, `serve` by default, on port 8080', () => {
    const [node, script, ...rest] = image.config.Entrypoint;
    assert.deepEqual(rest, []);
    assert.ok(NODE_24.some((n) => node === `${n}/bin/node`), `Node.js 24: ${node}`);
    assert.ok(image.contents.includes(node!.replace(/\/bin\/node$/, '')), 'node is in contents (and so in the Nix database)');
    const prefix = `${program}/lib/nixery/`;
    assert.ok(script !== undefined && script.startsWith(prefix), script);
    const relative = script.slice(prefix.length);
    assert.equal(relative, 'registry/bin/nixery.js');
    assert.ok(existsSync(path.join(repo, relative)), `${relative} exists in the source tree`);
    assert.ok(layout.workspaces.includes('registry') && layout.workspaceFiles.includes('bin') && layout.workspaceFiles.includes('dist'));
    assert.ok(image.contents.includes(program));
    assert.deepEqual(image.config.Cmd, ['serve']);
    assert.deepEqual(Object.keys(image.config.ExposedPorts ?? {}), ['8080/tcp']);
  });

  it('has the programs the registry runs: nix-instantiate, nix-store, nix, git, a shell and coreutils, on PATH', () => {
    const PATH = envOf(image).get('PATH')?.split(':') ?? [];
    for (const tool of ['nix', 'git', 'coreutils', 'bashInteractive', 'gnutar', 'gzip']) {
      assert.ok(image.contents.includes(fake(tool)), `${tool} is in the image`);
      assert.ok(PATH.includes(`${fake(tool)}/bin`), `${tool} is on PATH`);
    }
    assert.ok(PATH.includes(image.config.Entrypoint[0]!.replace(/\/node$/, '')), 'node is on PATH');
  });

  it('has CA certificates, named by SSL_CERT_FILE (and Nix and git)', () => {
    const env = envOf(image);
    const bundle = `${fake('cacert')}/etc/ssl/certs/ca-bundle.crt`;
    assert.ok(image.contents.includes(fake('cacert')));
    for (const name of ['SSL_CERT_FILE', 'NIX_SSL_CERT_FILE', 'GIT_SSL_CAINFO']) assert.equal(env.get(name), bundle, name);
  });

  it('runs single-user Nix: a registered store (Nix database), the product\'s Nix settings, a binary cache', async () => {
    assert.equal(image.includeNixDB, true);
    const conf = envOf(image).get('NIX_CONFIG') ?? '';
    assert.match(conf, /^sandbox = false$/m);
    assert.match(conf, /^build-users-group =\s*$/m);
    const productSettings = (await fs.readFile(path.join(repo, 'nix/nix.conf'), 'utf8'))
      .split('\n')
      .filter((line) => line.trim() && !line.trim().startsWith('#'));
    assert.ok(productSettings.length >= 5);
    for (const line of productSettings) assert.ok(conf.split('\n').includes(line), `the image's nix.conf has '${line}' from nix/nix.conf`);
    assert.match(conf, /^substituters = https:\/\/cache\.nixos\.org$/m);
    assert.match(conf, /^trusted-public-keys = cache\.nixos\.org-1:/m);
  });

  it('runs as the non-root user nixery (10000:10000, as the operator\'s pods ask), which owns every file of the image, the store included', async () => {
    assert.equal(image.config.User, '10000:10000');
    assert.deepEqual([image.uid, image.gid, image.uname, image.gname], [10000, 10000, 'nixery', 'nixery']);
    assert.equal(envOf(image).get('HOME'), '/var/lib/nixery');
    assert.equal(envOf(image).get('USER'), 'nixery');
    const root = await runExtraCommands(image);
    assert.match(await fs.readFile(path.join(root, 'etc/passwd'), 'utf8'), /^nixery:x:10000:10000:[^:]*:\/var\/lib\/nixery:/m);
    assert.match(await fs.readFile(path.join(root, 'etc/group'), 'utf8'), /^nixery:x:10000:$/m);
  });

  it('puts the nix/ folder beside the program, where registry/dist finds it', async () => {
    assert.equal(layout.nixDir, true);
    assert.match(programScript, /^cp -R \/nix\/store\/\S+-nixery-operator-workspace-\S+\/nix \$dest\/nix$/m);
    for (const f of ['resolve.nix', 'load-source.nix', 'offline/default.nix']) {
      assert.ok(existsSync(path.join(repo, 'nix', f)), `nix/${f} exists`);
    }
    const build = await evalImages<string>('workspace.fake.args.installPhase');
    assert.match(build, /cp -R package\.json node_modules nix \$out\//);
  });

  it('builds the program with the layout it declares', () => {
    assertScriptInstalls(programScript, layout);
  });

  it('keeps build tools out of the program', async () => {
    const disallowed = await evalImages<string[]>('registryProgram.fake.args.disallowedRequisites');
    for (const tool of ['python3', 'stdenv.cc', 'nodejs_24']) assert.ok(disallowed.includes(fake(tool)), tool);
  });

  it('lays out a writable /tmp, root and nixbld, nix.conf and /usr/bin/env', async () => {
    const root = await runExtraCommands(image);
    for (const dir of ['tmp', 'var/tmp']) {
      const st = await fs.stat(path.join(root, dir));
      assert.ok(st.isDirectory());
      assert.equal(st.mode & 0o7777, 0o1777, `${dir} is world-writable and sticky`);
    }
    assert.match(await fs.readFile(path.join(root, 'etc/passwd'), 'utf8'), /^root:x:0:0:/m);
    assert.match(await fs.readFile(path.join(root, 'etc/group'), 'utf8'), /^nixbld:x:30000:/m);
    assert.match(await fs.readFile(path.join(root, 'etc/nix/nix.conf'), 'utf8'), /^sandbox = false$/m);
    assert.equal(await fs.readlink(path.join(root, 'usr/bin/env')), `${fake('coreutils')}/bin/env`);
    assert.equal(await fs.readlink(path.join(root, 'usr/bin/busybox')), `${fake('busybox-static')}/bin/busybox`, 'where nix/offline finds it');
    assert.ok((await fs.stat(path.join(root, 'var/lib/nixery'))).isDirectory(), 'the working directory exists');
  });

  it('fails to evaluate with a runtime Node.js other than the one the addons are built for', async () => {
    await assert.rejects(
      evalImages('registry', ['--arg', 'runtimeNodejs', '(import ./fake-pkgs.nix).nodejs_24 // { version = "22.1.0"; }']),
      /must be the Node\.js 24 release the addons are built for/,
    );
  });

  it('takes the version as an argument', async () => {
    const other = await evalImages<ImageArgs>('registry', ['--argstr', 'version', '9.9.9']);
    assert.equal(other.tag, '9.9.9');
    assert.ok(other.contents.some((c) => c.endsWith('-nixery-registry-9.9.9')));
  });
});

// The image runs nixpkgs' Nix (2.19 or later in any nixpkgs that has nodejs_24), not Debian's 2.8
// the rest of the suite uses. Since Nix 2.19 `nix path-info --json` prints an object keyed by store
// path (null for an invalid path) instead of an array; registry/src/nix/realise.ts still expects
// the array, so the registry in the image would fail every build in its graph phase.
describe('the Nix in the registry image', () => {
});

describe('the operator image (ghcr.io/nixery-operator/operator)', () => {
  let image: ImageArgs;
  let program: string;
  let layout: ProgramLayout;
  let programScript: string;
  before(async () => {
    image = await evalImages<ImageArgs>('operator');
    program = await evalImages<string>('operatorProgram');
    layout = await evalImages<ProgramLayout>('operatorProgram.layout');
    programScript = await evalImages<string>('operatorProgram.fake.args.script');
  });

  it('builds the program with the layout it declares', () => {
    assertScriptInstalls(programScript, layout);
  });

  it('is a reproducible layered image named and tagged from package.json', () => {
    assert.equal(image.name, 'ghcr.io/nixery-operator/operator');
    assert.equal(image.tag, rootVersion);
    assert.equal(image.created, '1970-01-01T00:00:01Z');
    assert.ok(program.endsWith(`-nixery-operator-${rootVersion}`));
  });

  it('runs operator/bin/nixery-operator.js with Node.js 24 as uid/gid 65532', () => {
    assert.equal(image.config.User, '65532:65532');
    const [node, script, ...rest] = image.config.Entrypoint;
    assert.deepEqual(rest, []);
    assert.ok(NODE_24.some((n) => node === `${n}/bin/node`), `Node.js 24: ${node}`);
    const prefix = `${program}/lib/nixery/`;
    assert.ok(script !== undefined && script.startsWith(prefix), script);
    const relative = script.slice(prefix.length);
    assert.equal(relative, 'operator/bin/nixery-operator.js');
    assert.ok(existsSync(path.join(repo, relative)), `${relative} exists in the source tree`);
    assert.deepEqual(layout.workspaces, ['operator', 'registry']);
    assert.deepEqual(layout.links, [{ path: 'node_modules/@nixery/registry', target: 'registry' }]);
    assert.equal(layout.nixDir, false);
  });

  it('has no shell, no Nix and no Nix database', () => {
    for (const tool of ['bashInteractive', 'coreutils', 'nix', 'git']) assert.ok(!image.contents.includes(fake(tool)), tool);
    assert.notEqual(image.includeNixDB, true);
    assert.deepEqual([...image.contents].sort(), [program, image.config.Entrypoint[0]!.replace(/\/bin\/node$/, '')].sort());
  });

  it('has a /tmp and an /etc/passwd entry for its user, and points HOME at /tmp', async () => {
    const root = await runExtraCommands(image);
    const st = await fs.stat(path.join(root, 'tmp'));
    assert.equal(st.mode & 0o7777, 0o1777);
    assert.match(await fs.readFile(path.join(root, 'etc/passwd'), 'utf8'), /^nonroot:x:65532:65532:/m);
    assert.match(await fs.readFile(path.join(root, 'etc/group'), 'utf8'), /^nonroot:x:65532:/m);
    assert.equal(envOf(image).get('HOME'), '/tmp');
  });
});

// The layout a program gets in its image (lib/nixery/...), recreated from the working tree's built
// dist/ and node_modules, outside the repository, so nothing resolves from the repository's own
// node_modules. Node then has to find every import and the nix/ folder within the layout.
describe('the program layouts run', () => {
  const built = ['registry/dist/cli/main.js', 'operator/dist/main.js'];

  async function linkTree(from: string, to: string, skipTopNodeModules: boolean): Promise<void> {
    await fs.mkdir(to, { recursive: true });
    for (const entry of await fs.readdir(from, { withFileTypes: true })) {
      if (skipTopNodeModules && entry.name === 'node_modules') continue;
      const src = path.join(from, entry.name);
      const dst = path.join(to, entry.name);
      if (entry.isDirectory()) await linkTree(src, dst, false);
      else if (entry.isSymbolicLink()) await fs.symlink(await fs.readlink(src), dst);
      else {
        try {
          await fs.link(src, dst);
        } catch {
          await fs.copyFile(src, dst, fsConstants.COPYFILE_FICLONE);
        }
      }
    }
  }

  async function recreate(image: 'registry' | 'operator'): Promise<string> {
    for (const f of built) {
      assert.ok(existsSync(path.join(repo, f)), `${f} is missing: build the workspaces first (npm run build)`);
    }
    const layout = await evalImages<ProgramLayout>(`${image}Program.layout`);
    const top = await fs.mkdtemp(path.join(os.tmpdir(), `nix-images-${image}-`));
    cleanup.push(top);
    const dest = path.join(top, 'lib/nixery');
    for (const ws of layout.workspaces) {
      for (const f of layout.workspaceFiles) {
        const src = path.join(repo, ws, f);
        if (!existsSync(src)) continue;
        if ((await fs.stat(src)).isDirectory()) await linkTree(src, path.join(dest, ws, f), false);
        else {
          await fs.mkdir(path.join(dest, ws), { recursive: true });
          await fs.copyFile(src, path.join(dest, ws, f));
        }
      }
    }
    for (const p of layout.nodeModules) {
      assert.ok(existsSync(path.join(repo, p)), `${p} is not installed in the working tree (npm ci)`);
      await linkTree(path.join(repo, p), path.join(dest, p), true);
    }
    for (const l of layout.links) {
      await fs.mkdir(path.dirname(path.join(dest, l.path)), { recursive: true });
      await fs.symlink(path.relative(path.dirname(path.join(dest, l.path)), path.join(dest, l.target)), path.join(dest, l.path));
    }
    if (layout.nixDir) await linkTree(path.join(repo, 'nix'), path.join(dest, 'nix'), false);
    return dest;
  }

  const env = { ...process.env, NODE_PATH: '', NODE_OPTIONS: '' };

  it('copies dist/ with product code only: no test, no test helper, nothing that loads node:test', async () => {
    for (const ws of ['registry', 'operator']) {
      const dist = path.join(repo, ws, 'dist');
      assert.ok(existsSync(dist), `${ws}/dist is missing: build the workspaces first (npm run build)`);
      for (const f of await fs.readdir(dist, { recursive: true })) {
        // The build leaves the output of files it no longer compiles in place.
        const stale = `(stale output? rm -rf registry/dist operator/dist && npm run build)`;
        assert.doesNotMatch(f, /\.test\.|(^|\/)test-support(\/|\.)/, `${ws}/dist/${f} ${stale}`);
        if (f.endsWith('.js')) assert.doesNotMatch(await fs.readFile(path.join(dist, f), 'utf8'), /["']node:test["']/, `${ws}/dist/${f} ${stale}`);
      }
    }
  });

  it('registry: the CLI starts, and finds nix/ and the offline package set beside itself', async () => {
    const dest = await recreate('registry');
    const { stdout } = await runOk(process.execPath, [path.join(dest, 'registry/bin/nixery.js'), '--help'], { env, cwd: os.tmpdir() });
    assert.match(stdout, /Usage: nixery/);
    const probe = [
      `const { defaultNixDir } = await import(${JSON.stringify(path.join(dest, 'registry/dist/nix/nix-dir.js'))});`,
      `const { bundledPackageSetPath } = await import(${JSON.stringify(path.join(dest, 'registry/dist/config/config.js'))});`,
      'console.log(JSON.stringify([defaultNixDir(), bundledPackageSetPath()]));',
    ].join('\n');
    const dirs = await runOk(process.execPath, ['--input-type=module', '-e', probe], { env, cwd: os.tmpdir() });
    assert.deepEqual(JSON.parse(dirs.stdout), [path.join(dest, 'nix'), path.join(dest, 'nix/offline')]);
  });

  it('operator: the CLI starts, importing @nixery/registry through the workspace link', async () => {
    const dest = await recreate('operator');
    const { stdout } = await runOk(process.execPath, [path.join(dest, 'operator/bin/nixery-operator.js'), '--help'], { env, cwd: os.tmpdir() });
    assert.match(stdout, /Usage: nixery-operator/);
    assert.ok(!existsSync(path.join(dest, 'nix')), 'the operator image has no nix/');
    assert.ok(!existsSync(path.join(dest, 'node_modules/typescript')));
  });
});
