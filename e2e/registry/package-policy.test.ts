// Switches for clusters that must not build arbitrary packages (issue 18, part 6), with real Nix
// on the bundled package set: NIXERY_ON_DEMAND=false serves pushed tags only and runs no Nix at
// all; NIXERY_ALLOWED_PACKAGES / NIXERY_DENIED_PACKAGES refuse packages with 403 DENIED before Nix,
// also when a meta-package or a variant spelling names them. Each registry finds Nix through a
// PATH of wrappers that log every call, so "nothing reached Nix" is observed, not inferred.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { runOk } from '@nixery/test-support';
import { pullAndUnpack, runInRoot, skopeoInspect } from '../support/oci-client.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';

const TOKEN = 'e2e-policy-push-token-0123456789';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const NIX_PROGRAMS = ['nix', 'nix-instantiate', 'nix-store', 'nix-build', 'nix-env'];

interface ErrorBody {
  errors: { code: string; message: string; detail?: { packages?: string[]; refused?: { name: string; reason: string }[] } }[];
}

async function findProgram(name: string): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    const candidate = path.join(dir, name);
    if (await fs.access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  throw new Error(`${name} is not on PATH: the registry e2e suites need Nix (bash scripts/setup.sh installs it)`);
}

/** A directory of wrappers that log each Nix call to `log` and run the real program. */
async function loggingNix(dir: string, log: string): Promise<string> {
  const bin = path.join(dir, 'bin');
  await fs.mkdir(bin, { recursive: true });
  for (const name of NIX_PROGRAMS) {
    const real = await findProgram(name);
    const script = `#!/bin/sh\nprintf '%s\\n' "${name} $*" >> '${log}'\nexec '${real}' "$@"\n`;
    await fs.writeFile(path.join(bin, name), script, { mode: 0o755 });
  }
  return bin;
}

const nixCalls = async (log: string): Promise<string[]> =>
  (await fs.readFile(log, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? '' : Promise.reject(e)))).split('\n').filter(Boolean);

async function startWithLoggedNix(work: string, name: string, env: Record<string, string>): Promise<{ registry: RegistryProcess; log: string }> {
  const log = path.join(work, `${name}-nix-calls.log`);
  const bin = await loggingNix(path.join(work, name), log);
  const registry = await startRegistry({ env: { ...env, PATH: `${bin}:${process.env.PATH ?? ''}` } });
  return { registry, log };
}

async function manifestError(registry: RegistryProcess, name: string, tag = 'latest'): Promise<{ status: number; body: ErrorBody }> {
  const response = await fetch(`${registry.url}/v2/${name}/manifests/${tag}`);
  assert.match(response.headers.get('content-type') ?? '', /application\/json/, `${name}:${tag}`);
  return { status: response.status, body: (await response.json()) as ErrorBody };
}

describe('registry: switches for clusters that must not build arbitrary packages', () => {
  let work: string;
  /** On-demand builds on, with an allow list and a deny list. */
  let policed: RegistryProcess;
  let policedNix: string;
  /** On-demand builds off: pushed tags only. */
  let pushedOnly: RegistryProcess;
  let pushedOnlyNix: string;

  before(async () => {
    work = await tempDir('nixery-e2e-policy-');
    ({ registry: policed, log: policedNix } = await startWithLoggedNix(work, 'policed', {
      // Deny wins over allow: myTool and 7zip are in both.
      NIXERY_ALLOWED_PACKAGES: 'hello, bashInteractive, coreutils, moreutils, nano, haskellPackages.*, myTool, 7zip',
      NIXERY_DENIED_PACKAGES: 'nano,myTool,_7zip,haskellPackages.pandoc',
    }));
    ({ registry: pushedOnly, log: pushedOnlyNix } = await startWithLoggedNix(work, 'pushed-only', {
      NIXERY_ON_DEMAND: 'false',
      NIXERY_PUSH_TOKEN: TOKEN,
    }));
  });
  after(async () => {
    await policed?.stop();
    await pushedOnly?.stop();
    for (const registry of [policed, pushedOnly]) if (registry) await fs.rm(registry.storagePath, { recursive: true, force: true });
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('the wrappers see Nix when the registry builds: an allowed package builds', async () => {
    const response = await fetch(`${policed.url}/v2/hello/manifests/latest`);
    assert.equal(response.status, 200, await response.clone().text());
    assert.ok((await nixCalls(policedNix)).some((call) => call.startsWith('nix-instantiate ')), 'the build ran nix-instantiate through the wrappers');
  });

  it('refuses denied and not-allowed packages with 403 DENIED naming them, without running Nix', async () => {
    const callsBefore = (await nixCalls(policedNix)).length;
    const cases: [name: string, refused: { name: string; reason: string }[]][] = [
      ['htop', [{ name: 'htop', reason: 'not_allowed' }]],
      ['hello/htop', [{ name: 'htop', reason: 'not_allowed' }]],
      // Through the meta-package: shell is bashInteractive, coreutils, moreutils and nano.
      ['shell/hello', [{ name: 'nano', reason: 'denied' }]],
      // Variants the Nix lookup resolves to the denied attribute myTool.
      ['mytool', [{ name: 'mytool', reason: 'denied' }]],
      ['MYTOOL', [{ name: 'MYTOOL', reason: 'denied' }]],
      ['hello/myTool', [{ name: 'myTool', reason: 'denied' }]],
      // 7zip finds the attribute _7zip.
      ['7zip', [{ name: '7zip', reason: 'denied' }]],
      ['haskellpackages.pandoc', [{ name: 'haskellpackages.pandoc', reason: 'denied' }]],
    ];
    for (const [name, refused] of cases) {
      const { status, body } = await manifestError(policed, name);
      assert.equal(status, 403, name);
      const [error] = body.errors;
      assert.equal(error!.code, 'DENIED', name);
      assert.deepEqual(error!.detail?.refused, refused, name);
      assert.deepEqual(error!.detail?.packages, refused.map((r) => r.name), name);
      for (const r of refused) assert.ok(error!.message.includes(r.name), `${name}: ${error!.message}`);
    }
    const head = await fetch(`${policed.url}/v2/mytool/manifests/latest`, { method: 'HEAD' });
    assert.equal(head.status, 403);
    assert.deepEqual((await nixCalls(policedNix)).slice(callsBefore), [], 'no Nix call for a refused package');
  });

  it('with on-demand builds off, serves a pushed tag, also under a package-list name', async () => {
    for (const target of ['toolbox:v1', 'hello:pinned']) {
      await runOk(
        'skopeo',
        ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--dest-registry-token', TOKEN, `docker://${policed.host}/hello:latest`, `docker://${pushedOnly.host}/${target}`],
        { timeoutMs: 300_000 },
      );
    }
    const built = await fetch(`${policed.url}/v2/hello/manifests/latest`, { headers: { Accept: OCI_MANIFEST } });
    for (const reference of ['toolbox:v1', 'hello:pinned']) {
      const info = await skopeoInspect(pushedOnly.host, reference);
      assert.equal(info.Architecture, 'amd64', reference);
    }
    const pushed = await fetch(`${pushedOnly.url}/v2/toolbox/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(pushed.status, 200);
    assert.equal(pushed.headers.get('docker-content-digest'), built.headers.get('docker-content-digest'), 'skopeo pushed the OCI manifest it pulled, byte for byte');
    const rootfs = await pullAndUnpack(pushedOnly.host, 'toolbox:v1', path.join(work, 'toolbox'));
    assert.equal((await runInRoot(rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
  });

  it('with on-demand builds off, answers every other name with 404 MANIFEST_UNKNOWN, and never runs Nix', async () => {
    for (const [name, tag] of [['hello', 'latest'], ['shell/git', 'latest'], ['toolbox', 'v2'], ['hello', 'v1'], ['no-such-package', 'latest']] as const) {
      const { status, body } = await manifestError(pushedOnly, name, tag);
      assert.equal(status, 404, `${name}:${tag}`);
      assert.equal(body.errors[0]!.code, 'MANIFEST_UNKNOWN', `${name}:${tag}`);
      assert.match(body.errors[0]!.message, /on-demand builds are off/, `${name}:${tag}`);
    }
    const head = await fetch(`${pushedOnly.url}/v2/hello/manifests/latest`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    assert.deepEqual(await nixCalls(pushedOnlyNix), [], 'not one Nix call on this registry, from start-up on');
    assert.match(pushedOnly.logs(), /"onDemand":"off \(pushed tags only\)"/, 'the start-up line says so');
  });
});
