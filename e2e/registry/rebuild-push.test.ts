// A rebuild in proportion to what changed: `nixery build --push` of an image differing from a
// pushed one by one package packs only the layers whose store paths changed (the rest come from
// the layer cache) and uploads only those, with the config; the registry's own log of upload
// requests is the witness. Our registry shares blobs between repositories, so a push of the same
// image to a new repository finds every blob by HEAD and uploads nothing (against a registry that
// keeps repositories apart it mounts them instead: push-to-distribution.test.ts).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { nixeryBuild } from '../support/nixery-cli.ts';
import { skopeoInspect } from '../support/oci-client.ts';
import { startRegistry, tempDir } from '../support/registry.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

interface Layer {
  digest: string;
  size: number;
  storePaths: string[];
  kind: string;
  cached: boolean;
}

interface Pushed {
  uploaded: number;
  skipped: number;
  mounted: number;
  uploadedBytes: number;
}

/** The blob digests the registry took uploads of (a POST with ?digest=, or the PUT finishing a session), from its request log. */
function uploadedDigests(logs: string): string[] {
  const digests: string[] = [];
  for (const line of logs.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; method?: string; path?: string; status?: string };
    if (entry.msg !== 'request' || entry.status !== '201' || !(entry.method === 'POST' || entry.method === 'PUT')) continue;
    const match = /\/blobs\/uploads\/[^?]*\?(?:.*&)?digest=(sha256:[a-f0-9]{64})/.exec(entry.path ?? '');
    if (match) digests.push(match[1]!);
  }
  return digests;
}

describe('a rebuild after one package changed', () => {
  it('packs and uploads only the changed layers and the config; a new repository of the same registry gets nothing uploaded', async () => {
    const token = 'e2e-rebuild-push-token-0123';
    const registry = await startRegistry({ env: { NIXERY_PUSH_TOKEN: token } });
    dirs.push(registry.storagePath);
    try {
      const storage = await tempDir('nixery-e2e-rebuild-');
      dirs.push(storage);
      const env = { STORAGE_PATH: storage, NIXERY_PUSH_TOKEN: token };
      const first = await nixeryBuild(['--packages', 'shell,git,alpha', '--push', `${registry.host}/team/app:v1`], env);
      assert.equal(first.code, 0, first.stderr);
      const before = first.json.layers as Layer[];
      const uploadsBefore = uploadedDigests(registry.logs()).length;

      const second = await nixeryBuild(['--packages', 'shell,git,alpha,hello', '--push', `${registry.host}/team/app:v2`], env);
      assert.equal(second.code, 0, second.stderr);
      const after = second.json.layers as Layer[];
      const had = new Set(before.map((l) => l.digest));
      const changed = after.filter((l) => !had.has(l.digest));

      // Packed: hello's layer and the customisation layer (its symlink forest names hello); every
      // other layer is the first build's, taken from the layer cache.
      assert.deepEqual(
        changed.map((l) => (l.kind === 'customisation' ? 'customisation' : l.storePaths.map((p) => p.replace(/^\/nix\/store\/[a-z0-9]{32}-/, '')).join(','))).sort(),
        ['customisation', 'hello-2.12'],
      );
      assert.deepEqual(after.filter((l) => !l.cached).map((l) => l.digest).sort(), changed.map((l) => l.digest).sort(), 'only the changed layers were packed');
      assert.ok(after.length - changed.length >= 3, `most layers are unchanged (${after.length - changed.length} of ${after.length})`);

      // Uploaded: those layers and the new config (then the SBOM's document), nothing else.
      const config = second.json.config as { digest: string; size: number };
      const sbom = (second.json.sbom as { document: { digest: string } }).document.digest;
      const uploads = uploadedDigests(registry.logs()).slice(uploadsBefore);
      assert.deepEqual(uploads.sort(), [...changed.map((l) => l.digest), config.digest, sbom].sort());
      const pushed = second.json.pushed as Pushed;
      assert.deepEqual(
        { uploaded: pushed.uploaded, skipped: pushed.skipped, mounted: pushed.mounted, uploadedBytes: pushed.uploadedBytes },
        { uploaded: changed.length + 1, skipped: after.length - changed.length, mounted: 0, uploadedBytes: changed.reduce((sum, l) => sum + l.size, 0) + config.size },
      );
      assert.equal((await skopeoInspect(registry.host, 'team/app:v2')).Digest, second.json.digest);

      // The same image to another repository: every blob is there already.
      const elsewhere = await nixeryBuild(['--packages', 'shell,git,alpha,hello', '--push', `${registry.host}/team/other:v1`], env);
      assert.equal(elsewhere.code, 0, elsewhere.stderr);
      assert.deepEqual(elsewhere.json.pushed as Pushed & Record<string, unknown>, { ...(elsewhere.json.pushed as object), uploaded: 0, mounted: 0, uploadedBytes: 0, skipped: after.length + 1 });
      assert.equal(uploadedDigests(registry.logs()).length, uploadsBefore + uploads.length, 'no upload at all');
      assert.equal((await skopeoInspect(registry.host, 'team/other:v1')).Digest, second.json.digest);
    } finally {
      await registry.stop();
    }
  });
});
