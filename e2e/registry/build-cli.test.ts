// `nixery build`: the same pipeline as the server, one JSON document on stdout, and an exit code
// that tells a missing package from a Nix failure from bad usage.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { nixeryBuild } from '../support/nixery-cli.ts';
import { commandLine, descendantsOf, spawn, stopChild, within } from '@nixery/test-support';
import { NIXERY_BIN, tempDir } from '../support/registry.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function storageEnv(): Promise<Record<string, string>> {
  const dir = await tempDir('nixery-e2e-cli-');
  dirs.push(dir);
  return { STORAGE_PATH: dir };
}

describe('nixery build', () => {
  it('stores the image and prints its manifest digest, layers with store paths, and timings', async () => {
    const env = await storageEnv();
    const { code, json } = await nixeryBuild(['--packages', 'shell,hello', '--tag', 'v1'], env);
    assert.equal(code, 0);
    assert.equal(json.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.match(json.digest as string, /^sha256:[a-f0-9]{64}$/);
    assert.equal(json.tag, 'v1');
    const layers = json.layers as { digest: string; size: number; storePaths: string[]; kind: string }[];
    assert.ok(layers.some((l) => l.storePaths.some((p) => /-hello-2\.12$/.test(p))));
    assert.equal(layers.at(-1)!.kind, 'customisation');
    const timings = json.timings as Record<string, number>;
    for (const phase of ['evaluateMs', 'realiseMs', 'graphMs', 'layeringMs', 'packingMs', 'totalMs']) {
      assert.equal(typeof timings[phase], 'number', phase);
    }
    for (const layer of layers) {
      const stat = await fs.stat(path.join(env.STORAGE_PATH!, 'blobs/sha256', layer.digest.slice(7)));
      assert.equal(stat.size, layer.size);
    }
  });

  it('exits 2 naming the missing packages', async () => {
    const { code, json } = await nixeryBuild(['--packages', 'hello,nope'], await storageEnv());
    assert.equal(code, 2);
    assert.deepEqual(json, { error: { outcome: 'not_found', message: json.error && (json.error as { message: string }).message, packages: ['nope'] } });
  });

  it('exits 3 when Nix fails to build a package, naming it', async () => {
    const { code, json } = await nixeryBuild(['--packages', 'broken'], await storageEnv());
    assert.equal(code, 3);
    const error = json.error as { outcome: string; packages: string[] };
    assert.equal(error.outcome, 'nix_failure');
    assert.deepEqual(error.packages, ['broken']);
  });

  it('exits 64 for an invalid package list or configuration, saying what is wrong', async () => {
    const env = await storageEnv();
    const badName = await nixeryBuild(['--packages', 'hello,arm64'], env);
    assert.equal(badName.code, 64);
    assert.match((badName.json.error as { message: string }).message, /arm64/);
    const badConfig = await nixeryBuild(['--packages', 'hello'], { ...env, NIX_TIMEOUT: 'soon' });
    assert.equal(badConfig.code, 64);
    assert.equal((badConfig.json.error as { outcome: string }).outcome, 'usage');
    assert.match((badConfig.json.error as { message: string }).message, /^NIX_TIMEOUT: /);
  });
});

describe('nixery build stopped by a signal', () => {
  it('stops Nix and its builder on SIGTERM and exits with 143', async () => {
    const env = await storageEnv();
    // `slow` sleeps 30 s in its builder: long enough to find the processes and stop them.
    const command = spawn(process.execPath, [NIXERY_BIN, 'build', '--packages', 'slow'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    command.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    command.stderr.resume();
    const exited = new Promise<number | null>((resolve) => command.on('exit', (code) => resolve(code)));
    let started: number[] = [];
    try {
      // Until Nix is building: a process below Nix's whose program is not Nix itself (the builder's shell or sleep).
      const building = () => started.some((pid) => !/^nix/.test(path.basename(commandLine(pid)[0] ?? 'nix')));
      for (let i = 0; i < 300 && !building(); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        started = descendantsOf(command.pid!);
      }
      assert.ok(building(), `Nix is building (processes ${started.map((pid) => commandLine(pid).join(' ')).join('; ')})`);

      command.kill('SIGTERM');
      assert.equal(await within(20_000, 'nixery build to exit after SIGTERM', exited), 128 + 15, 'the exit status of a process ended by SIGTERM');
      assert.deepEqual(JSON.parse(stdout), { error: { outcome: 'error', message: 'interrupted by SIGTERM' } });
      const left = started.filter((pid) => commandLine(pid).length > 0);
      assert.deepEqual(left.map((pid) => commandLine(pid).join(' ')), [], 'Nix and its builder were stopped');
    } finally {
      await stopChild(command, 'SIGKILL');
      for (const pid of started) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
});

describe('nixery build --push (what a NixImage build Job runs)', () => {
  it('builds into its own storage, pushes to the registry with the token, and reports the pushed digest', async () => {
    const { startRegistry } = await import('../support/registry.ts');
    const { skopeoInspect, skopeoInspectRaw } = await import('../support/oci-client.ts');
    const token = 'e2e-build-push-token-0123';
    const registry = await startRegistry({ env: { NIXERY_PUSH_TOKEN: token } });
    dirs.push(registry.storagePath);
    try {
      const env: Record<string, string> = { ...(await storageEnv()), NIXERY_PUSH_TOKEN: token };
      const config = JSON.stringify({ entrypoint: ['/bin/hello'], env: [{ name: 'GREETING', value: 'hi' }], labels: { team: 'a' } });
      const { code, json, stderr } = await nixeryBuild(['--packages', 'hello', '--config-json', config, '--push', `${registry.host}/toolbox:v1`], env);
      assert.equal(code, 0, stderr);
      const pushed = json.pushed as { reference: string; digest: string; uploaded: number };
      assert.equal(pushed.reference, `${registry.host}/toolbox:v1`);
      assert.equal(pushed.digest, json.digest);
      assert.ok(pushed.uploaded > 0);
      const info = await skopeoInspect(registry.host, 'toolbox:v1');
      assert.equal(info.Digest, json.digest);
      const imageConfig = (await skopeoInspectRaw(registry.host, 'toolbox:v1', 'config')).config as { Entrypoint: string[]; Env: string[]; Labels: Record<string, string> };
      assert.deepEqual(imageConfig.Entrypoint, ['/bin/hello']);
      assert.ok(imageConfig.Env.includes('GREETING=hi'));
      assert.deepEqual(imageConfig.Labels, { team: 'a' });

      const resultFile = `${env.STORAGE_PATH}/termination-log`;
      const again = await nixeryBuild(['--packages', 'hello', '--config-json', config, '--push', `${registry.host}/toolbox:v2`, '--result-file', resultFile], env);
      const summary = JSON.parse(await fs.readFile(resultFile, 'utf8'));
      assert.equal(summary.digest, json.digest);
      assert.equal(summary.pushed, `${registry.host}/toolbox:v2`);
      assert.equal((again.json.pushed as { uploaded: number }).uploaded, 0, 'the registry has every blob already');

      const denied = await nixeryBuild(['--packages', 'hello', '--push', `${registry.host}/toolbox:v3`, '--result-file', resultFile], {
        ...env,
        NIXERY_PUSH_TOKEN: 'not-the-right-token-000',
      });
      assert.equal(JSON.parse(await fs.readFile(resultFile, 'utf8')).error.outcome, 'push_failure');
      assert.equal(denied.code, 6);
      assert.equal((denied.json.error as { outcome: string }).outcome, 'push_failure');
      assert.match((denied.json.error as { message: string }).message, /401/);
    } finally {
      await registry.stop();
    }
  });
});
