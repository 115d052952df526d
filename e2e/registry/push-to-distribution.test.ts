// `nixery build --push` into the CNCF distribution registry (Debian's docker-registry), which
// answers a single-POST blob upload with 202 and a Location: the client must finish each upload
// with a PUT there. What a NixImage build Job does when its push target is such a registry.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startDockerRegistry } from '../support/docker-registry.ts';
import { nixeryBuild } from '../support/nixery-cli.ts';
import { skopeoInspect, skopeoInspectRaw } from '../support/oci-client.ts';
import { runOk } from '@nixery/test-support';
import { tempDir } from '../support/registry.ts';

const dirs: string[] = [];

interface Pushed {
  reference: string;
  digest: string;
  uploaded: number;
  skipped: number;
  mounted: number;
  uploadedBytes: number;
  sbomDigest: string;
}

/** The repositories whose layer links docker-registry has for a blob: where it can be pulled from. */
async function repositoriesLinking(registry: { dir: string }, digest: string): Promise<string[]> {
  const root = path.join(registry.dir, 'data/docker/registry/v2/repositories');
  const names: string[] = [];
  for (const team of await fs.readdir(root)) {
    for (const repository of await fs.readdir(path.join(root, team))) {
      const link = path.join(root, team, repository, '_layers/sha256', digest.slice(7), 'link');
      if (await fs.stat(link).then(() => true, () => false)) names.push(`${team}/${repository}`);
    }
  }
  return names.sort();
}
after(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

describe('nixery build --push into docker-registry (CNCF distribution)', () => {
  it('pushes an image that skopeo reads back under the digest nixery reported', async () => {
    const registry = await startDockerRegistry();
    try {
      const storage = await tempDir('nixery-e2e-push-distribution-');
      dirs.push(storage);
      // docker-registry here has no authentication; the CLI sends the token and it is ignored.
      const env = { STORAGE_PATH: storage, NIXERY_PUSH_TOKEN: 'unused-by-docker-registry-0123' };
      const { code, json, stderr } = await nixeryBuild(['--packages', 'shell,hello', '--push', `${registry.host}/team/toolbox:v1`], env);
      assert.equal(code, 0, `${stderr}\ndocker-registry:\n${registry.logs().slice(-4000)}`);
      const layers = json.layers as { digest: string; size: number }[];
      const pushed = json.pushed as Pushed;
      const imageBytes = layers.reduce((sum, l) => sum + l.size, 0) + (json.config as { size: number }).size;
      assert.deepEqual(pushed, { reference: `${registry.host}/team/toolbox:v1`, digest: json.digest, uploaded: layers.length + 1, skipped: 0, mounted: 0, uploadedBytes: imageBytes, sbomDigest: json.sbomDigest });
      // distribution 2.8 has no referrers API: it keeps the SBOM's manifest by digest.
      const sbom = await skopeoInspectRaw(registry.host, `team/toolbox@${json.sbomDigest as string}`, 'manifest');
      assert.equal((sbom.subject as { digest: string }).digest, json.digest);

      const info = await skopeoInspect(registry.host, 'team/toolbox:v1');
      assert.equal(info.Digest, json.digest);
      assert.deepEqual(info.Layers, layers.map((l) => l.digest));

      // A full pull: skopeo fetches and verifies every blob against its digest.
      const out = await tempDir('nixery-e2e-push-distribution-oci-');
      dirs.push(out);
      const layout = path.join(out, 'layout');
      await runOk('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/team/toolbox:v1`, `oci:${layout}:v1`], { timeoutMs: 300_000 });
      const index = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      assert.equal(index.manifests.length, 1);
      const manifest = JSON.parse(await fs.readFile(path.join(layout, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
      assert.deepEqual(manifest.layers.map((l) => l.digest), layers.map((l) => l.digest));

      // Pushed again under another tag, nothing is uploaded twice.
      const again = await nixeryBuild(['--packages', 'shell,hello', '--push', `${registry.host}/team/toolbox:v2`], env);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(again.json.pushed, { reference: `${registry.host}/team/toolbox:v2`, digest: json.digest, uploaded: 0, skipped: layers.length + 1, mounted: 0, uploadedBytes: 0, sbomDigest: json.sbomDigest });
      assert.equal((await skopeoInspect(registry.host, 'team/toolbox:v2')).Digest, json.digest);
    } finally {
      await registry.stop();
    }
  });

  it('mounts the blobs of an earlier push into a new repository instead of uploading them, also from a fresh storage with --push-mount-from', async () => {
    const registry = await startDockerRegistry();
    try {
      const storage = await tempDir('nixery-e2e-push-distribution-mount-');
      dirs.push(storage);
      const env = { STORAGE_PATH: storage, NIXERY_PUSH_TOKEN: 'unused-by-docker-registry-0123' };
      const first = await nixeryBuild(['--packages', 'shell,hello', '--push', `${registry.host}/team/first:v1`], env);
      assert.equal(first.code, 0, first.stderr);
      const blobs = [(first.json.config as { digest: string }).digest, ...(first.json.layers as { digest: string }[]).map((l) => l.digest)];

      // This storage remembers where it pushed them: the new repository mounts every one.
      const second = await nixeryBuild(['--packages', 'shell,hello', '--push', `${registry.host}/team/second:v1`], env);
      assert.equal(second.code, 0, `${second.stderr}\ndocker-registry:\n${registry.logs().slice(-4000)}`);
      const pushed = second.json.pushed as Pushed;
      assert.deepEqual([pushed.uploaded, pushed.skipped, pushed.mounted, pushed.uploadedBytes], [0, 0, blobs.length, 0]);
      for (const digest of blobs.slice(1)) assert.deepEqual(await repositoriesLinking(registry, digest), ['team/first', 'team/second'], digest);
      assert.equal((await skopeoInspect(registry.host, 'team/second:v1')).Digest, first.json.digest);

      // A NixImage Job's storage starts empty: it remembers nothing, and --push-mount-from names the source.
      const fresh = await tempDir('nixery-e2e-push-distribution-fresh-');
      dirs.push(fresh);
      const named = await nixeryBuild(['--packages', 'shell,hello', '--push', `${registry.host}/team/third:v1`, '--push-mount-from', 'team/nothing-here,team/first'], { ...env, STORAGE_PATH: fresh });
      assert.equal(named.code, 0, named.stderr);
      const viaFlag = named.json.pushed as Pushed;
      assert.equal(named.json.digest, first.json.digest, 'the same image, packed again byte for byte');
      assert.deepEqual([viaFlag.uploaded, viaFlag.mounted, viaFlag.uploadedBytes], [0, blobs.length, 0]);

      // A full pull from the mounted repository: skopeo verifies every blob against its digest.
      const out = await tempDir('nixery-e2e-push-distribution-mounted-');
      dirs.push(out);
      await runOk('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/team/third:v1`, `oci:${path.join(out, 'layout')}:v1`], { timeoutMs: 300_000 });
    } finally {
      await registry.stop();
    }
  });
});
