// The registry and `nixery build` depend on their own Nix settings (nix/nix.conf), not on the
// host's: a machine whose nix.conf names a build-users group that does not exist, turns on the
// sandbox, forbids local builds or adds hooks must still build and serve images. Each image here
// is new to the Nix store (its package says a fresh nonce), so Nix really builds under the
// hostile configuration rather than finding everything already there.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { nixeryBuild } from '../support/nixery-cli.ts';
import { pullAndUnpack, runInRoot } from '../support/oci-client.ts';
import { REPO_ROOT, runOk } from '@nixery/test-support';
import { startRegistry, tempDir } from '../support/registry.ts';

const OFFLINE_SET = path.join(REPO_ROOT, 'nix/offline');

/** Each of these alone stops a plain `nix-build` on this machine, or makes it build elsewhere. */
const HOSTILE_NIX_CONF = `
build-users-group = nixery-no-such-group
sandbox = true
max-jobs = 0
builders = ssh://nixery-no-such-host x86_64-linux
store = daemon
pure-eval = true
restrict-eval = true
pre-build-hook = /nonexistent/nixery-pre-build-hook
post-build-hook = /nonexistent/nixery-post-build-hook
`;

describe('Nix settings are the product\'s, not the host\'s', () => {
  let work: string;
  let hostileEnv: Record<string, string>;

  before(async () => {
    work = await tempDir('nixery-e2e-hostile-nix-');
    const confDir = path.join(work, 'etc-nix');
    await fs.mkdir(confDir);
    await fs.writeFile(path.join(confDir, 'nix.conf'), HOSTILE_NIX_CONF);
    const setDir = path.join(work, 'pkgs');
    await fs.mkdir(setDir);
    // A fresh derivation per run: the greeting is part of its hash.
    await fs.writeFile(
      path.join(setDir, 'default.nix'),
      `{ system ? builtins.currentSystem, ... }:
let base = import ${OFFLINE_SET} { inherit system; };
in base // { hello = base.writeShellScriptBin "hello" "echo ${'$'}{builtins.readFile ./greeting}"; }
`,
    );
    hostileEnv = {
      NIX_CONF_DIR: confDir,
      NIX_CONFIG: 'max-jobs = 0',
      NIXERY_PKGS_PATH: setDir,
    };
  });
  after(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  async function freshGreeting(): Promise<string> {
    const greeting = `hello under a hostile nix.conf ${randomUUID()}`;
    await fs.writeFile(path.join(work, 'pkgs', 'greeting'), greeting);
    return greeting;
  }

  it('the configuration is hostile: plain nix-build fails under it', async () => {
    await freshGreeting();
    await assert.rejects(
      runOk('nix-build', ['--no-out-link', path.join(work, 'pkgs'), '-A', 'hello'], {
        env: { ...process.env, ...hostileEnv },
        timeoutMs: 120_000,
      }),
    );
  });

  it('nixery build builds and stores the image', async () => {
    await freshGreeting();
    const storagePath = path.join(work, 'build-storage');
    const result = await nixeryBuild(['--packages', 'hello'], { ...hostileEnv, STORAGE_PATH: storagePath });
    assert.equal(result.code, 0, `nixery build failed:\n${JSON.stringify(result.json)}\n${result.stderr.slice(-4000)}`);
    const layers = result.json.layers as { storePaths: string[] }[];
    assert.ok(layers.some((l) => l.storePaths.some((p) => p.endsWith('-hello'))), 'the new hello is in a layer');
  });

  it('nixery serve builds on a pull, and the image runs', async () => {
    const greeting = await freshGreeting();
    const registry = await startRegistry({ env: hostileEnv });
    try {
      const rootfs = await pullAndUnpack(registry.host, 'hello:latest', path.join(work, 'pull'));
      assert.equal((await runInRoot(rootfs, ['/bin/hello'])).trim(), greeting);
    } catch (error) {
      throw new Error(`${String(error)}\nregistry log:\n${registry.logs().slice(-4000)}`, { cause: error });
    } finally {
      await registry.stop();
    }
  });
});
