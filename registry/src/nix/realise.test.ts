import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  NixBuildError,
  NixEvaluationError,
  NixTimeoutError,
  PackagesNotFoundError,
  evaluateImage,
  realiseImage,
  type ImageRequest,
  type RealisedImage,
} from './index.ts';
import { eventually, noProcessMatching } from '@nixery/test-support';
import { offlineSetPath, testOptions } from './test-support.ts';
import { outputOf } from '../test-support/programs.ts';

const source = { type: 'path', path: offlineSetPath } as const;

function request(packages: string[], system: ImageRequest['system'] = 'x86_64-linux'): ImageRequest {
  return { source, packages, system };
}

function realise(packages: string[], system?: ImageRequest['system']): Promise<RealisedImage> {
  return realiseImage(request(packages, system), testOptions());
}

const storeName = (p: string) => path.basename(p).slice(33);

describe('realiseImage against the offline set', () => {
  it('finds hello, builds it and returns its closure', async () => {
    const image = await realise(['hello']);
    assert.equal(image.packages.length, 1);
    const [hello] = image.packages;
    assert.deepEqual(hello?.attrPath, ['hello']);
    assert.equal(hello?.outPaths.length, 1);
    const out = hello!.outPaths[0]!;
    assert.equal(outputOf(path.join(out, 'bin', 'hello'), []), 'Hello, world!\n');
    assert.deepEqual(image.closure.map((p) => storeName(p.path)).sort(), ['busybox-1.35', 'hello-2.12']);
    for (const key of ['evaluateMs', 'realiseMs', 'graphMs'] as const) assert.ok(image.timings[key] >= 0);
  });

  it('resolves lower-case, leading-digit and nested names, in request order', async () => {
    const image = await realise(['mytool', '7zip', 'haskellpackages.pandoc', 'perlpackages.json', 'perlpackages.Json']);
    assert.deepEqual(
      image.packages.map((p) => [p.name, p.attrPath]),
      [
        ['mytool', ['myTool']],
        ['7zip', ['_7zip']],
        ['haskellpackages.pandoc', ['haskellPackages', 'pandoc']],
        // Two attributes fold to `json`: the lexicographically smallest wins, an exact match beats both.
        ['perlpackages.json', ['perlPackages', 'JSON']],
        ['perlpackages.Json', ['perlPackages', 'Json']],
      ],
    );
  });

  it('evaluates alone: case variants resolve to one derivation, and realising that evaluation runs no evaluation again', async () => {
    const evaluated = await evaluateImage(request(['Hello', 'hELLO', 'MYTOOL']), testOptions());
    assert.deepEqual(evaluated.packages.map((p) => [p.name, p.attrPath.join('.')]), [['Hello', 'hello'], ['hELLO', 'hello'], ['MYTOOL', 'myTool']]);
    assert.equal(evaluated.packages[0]!.drvPath, evaluated.packages[1]!.drvPath);
    assert.match(evaluated.packages[0]!.drvPath, /^\/nix\/store\/[a-z0-9]{32}-hello-2\.12\.drv$/);
    assert.deepEqual(Object.keys(evaluated.packages[0]!.outputs), ['out']);
    // A source that cannot be evaluated: only an evaluation would notice.
    const image = await realiseImage(
      { source: { type: 'path', path: path.join(os.tmpdir(), 'no-such-package-set') }, packages: ['hello'], system: 'x86_64-linux', evaluated },
      testOptions(),
    );
    assert.deepEqual(image.packages.map((p) => p.name), ['Hello', 'hELLO', 'MYTOOL']);
    assert.equal(image.timings.evaluateMs, evaluated.evaluateMs);
    await assert.rejects(evaluateImage(request(['hello', 'nope']), testOptions()), (error: unknown) => {
      assert.ok(error instanceof PackagesNotFoundError);
      assert.deepEqual(error.packages, ['nope']);
      return true;
    });
  });

  it('gives the outputs an environment would get (meta.outputsToInstall), or the one asked for', async () => {
    const image = await realise(['cowsay', 'cowsay.doc']);
    assert.deepEqual(image.packages[0]!.outPaths.map(storeName).sort(), ['cowsay-3.7', 'cowsay-3.7-man']);
    assert.deepEqual(image.packages[1]!.outPaths.map(storeName), ['cowsay-3.7-doc']);
  });

  it('reports every missing package at once, sorted', async () => {
    await assert.rejects(realise(['nope2', 'hello', 'nope1', 'haskellPackages', 'hello.name']), (error: unknown) => {
      assert.ok(error instanceof PackagesNotFoundError);
      // A set that is not a derivation and an attribute that is a string are not packages either.
      assert.deepEqual(error.packages, ['haskellPackages', 'hello.name', 'nope1', 'nope2']);
      assert.deepEqual(error.failedToEvaluate, []);
      return true;
    });
  });

  it('counts a package that throws when evaluated as not found, and says so', async () => {
    await assert.rejects(realise(['removedtool', 'hello']), (error: unknown) => {
      assert.ok(error instanceof PackagesNotFoundError);
      assert.deepEqual(error.packages, ['removedtool']);
      assert.deepEqual(error.failedToEvaluate, ['removedtool']);
      return true;
    });
  });

  it('treats names as data: Nix syntax in a name is just a name that is not found', async () => {
    const names = ['"; builtins.abort "x', '${builtins.abort "y"}', "'' + builtins.abort \"z\" + ''", 'a\nb'];
    await assert.rejects(realise([...names, 'hello']), (error: unknown) => {
      assert.ok(error instanceof PackagesNotFoundError);
      assert.deepEqual(error.packages, [...names].sort());
      return true;
    });
  });

  it('names the package whose build failed and keeps the builder message', async () => {
    await assert.rejects(realise(['alpha', 'broken']), (error: unknown) => {
      assert.ok(error instanceof NixBuildError);
      assert.deepEqual(error.packages, ['broken']);
      assert.match(error.logTail, /broken-1\.0: this package fails to build on purpose/);
      assert.equal(error.failedDerivations.length, 1);
      assert.match(error.failedDerivations[0]!, /-broken-1\.0\.drv$/);
      return true;
    });
  });

  it('names the requested package when a dependency of it failed', async () => {
    await assert.rejects(realise(['hello', 'needsbroken']), (error: unknown) => {
      assert.ok(error instanceof NixBuildError);
      assert.deepEqual(error.packages, ['needsbroken']);
      assert.match(error.logTail, /fails to build on purpose/);
      return true;
    });
  });

  it('returns a shared dependency once, with the references between paths', async () => {
    const image = await realise(['alpha', 'beta']);
    const names = image.closure.map((p) => storeName(p.path));
    assert.deepEqual([...names].sort(), ['alpha-1.0', 'beta-1.0', 'busybox-1.35', 'libshared-1.0']);
    assert.deepEqual(image.closure.map((p) => p.path), image.closure.map((p) => p.path).sort());
    const byName = new Map(image.closure.map((p) => [storeName(p.path), p]));
    const libshared = byName.get('libshared-1.0')!;
    const busybox = byName.get('busybox-1.35')!;
    for (const tool of ['alpha-1.0', 'beta-1.0']) {
      assert.deepEqual(byName.get(tool)!.references, [libshared.path, busybox.path].sort(), tool);
    }
    assert.deepEqual(libshared.references, []);
    assert.ok(libshared.narSize > 4096);
    assert.ok(image.closure.every((p) => !p.references.includes(p.path)));
  });

  it('builds a closure of 120 tiny paths for layer budgets', async () => {
    const image = await realise(['manyDeps']);
    assert.equal(image.closure.length, 121);
    const root = image.closure.find((p) => p.path === image.packages[0]!.outPaths[0]);
    assert.equal(root?.references.length, 120);
  });

  it('builds shell packages whose scripts run', async () => {
    const image = await realise(['bashInteractive', 'coreutils', 'moreutils', 'nano', 'cacert', 'iana-etc', 'git', 'htop']);
    const out = (name: string) => image.packages.find((p) => p.name === name)!.outPaths[0]!;
    assert.equal(outputOf(path.join(out('bashInteractive'), 'bin/bash'), ['-c', 'echo hi']), 'hi\n');
    assert.equal(outputOf(path.join(out('coreutils'), 'bin/echo'), ['x']), 'x\n');
    assert.match(outputOf(path.join(out('git'), 'bin/git'), ['--version']), /^git version/);
    assert.equal(
      outputOf(path.join(out('moreutils'), 'bin/sponge'), [], { input: 'soaked\n' }),
      'soaked\n',
    );
    assert.ok(fs.statSync(path.join(out('cacert'), 'etc/ssl/certs/ca-bundle.crt')).isFile());
    assert.match(fs.readFileSync(path.join(out('iana-etc'), 'etc/services'), 'utf8'), /^https\s+443\/tcp/m);
    // Shebangs point into the store, so the scripts work in an image with nothing else.
    assert.match(fs.readFileSync(path.join(out('nano'), 'bin/nano'), 'utf8'), /^#!\/nix\/store\/[a-z0-9]{32}-busybox-1\.35\/bin\/sh\n/);
  });

  it('returns an empty image for an empty package list', async () => {
    const image = await realise([]);
    assert.deepEqual(image.packages, []);
    assert.deepEqual(image.closure, []);
  });

  it('builds for aarch64-linux from the arm64 busybox, run through qemu-user-static (nix.conf\'s extra-platforms)', async () => {
    const image = await realise(['hello'], 'aarch64-linux');
    const [hello] = image.packages;
    const busybox = image.closure.find((p) => storeName(p.path) === 'busybox-1.35')!.path;
    // ELF, 64-bit, e_machine 183: AArch64.
    const header = fs.readFileSync(path.join(busybox, 'bin', 'busybox')).subarray(0, 20);
    assert.deepEqual([...header.subarray(0, 5)], [0x7f, 0x45, 0x4c, 0x46, 2]);
    assert.equal(header.readUInt16LE(18), 183);
    assert.equal(outputOf(path.join(busybox, 'bin', 'uname'), ['-m']), 'aarch64\n');
    assert.equal(outputOf(path.join(hello!.outPaths[0]!, 'bin', 'hello'), []), 'Hello, world!\n');
    const amd64 = await realise(['hello']);
    assert.notEqual(amd64.packages[0]!.outPaths[0], hello!.outPaths[0]);
  });

  it('reports a package source that does not load as an evaluation error', async () => {
    const missing = path.join(os.tmpdir(), `no-such-package-set-${process.pid}`);
    await assert.rejects(
      realiseImage({ source: { type: 'path', path: missing }, packages: ['hello'], system: 'x86_64-linux' }, testOptions()),
      (error: unknown) => {
        assert.ok(error instanceof NixEvaluationError);
        assert.match(error.logTail, /no-such-package-set/);
        return true;
      },
    );
  });

  it('stops a build that exceeds the timeout and leaves no Nix process behind', async () => {
    const started = performance.now();
    await assert.rejects(realiseImage(request(['slow']), testOptions({ timeoutSeconds: 2 })), (error: unknown) => {
      assert.ok(error instanceof NixTimeoutError);
      assert.equal(error.seconds, 2);
      assert.equal(error.phase, 'realise');
      return true;
    });
    assert.ok(performance.now() - started < 10_000, 'the timeout ends the build promptly');
    await eventually('Nix to be gone', () => noProcessMatching('slow-1.0'), 3000, 50);
  });

  it('stops Nix when the caller aborts', async () => {
    const controller = new AbortController();
    const reason = new Error('client went away');
    setTimeout(() => controller.abort(reason), 1000);
    await assert.rejects(realiseImage(request(['slow']), testOptions({ signal: controller.signal })), (error: unknown) => {
      assert.equal(error, reason);
      return true;
    });
    await eventually('Nix to be gone', () => noProcessMatching('slow-1.0'), 3000, 50);
  });
});
