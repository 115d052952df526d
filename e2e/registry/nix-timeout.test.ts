// NIX_TIMEOUT ends a hung Nix run: the client gets an error, not a hang, and the server stays up.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { startRegistry, type RegistryProcess } from '../support/registry.ts';
import { processesMatching } from '@nixery/test-support';

describe('registry: Nix timeout', () => {
  let registry: RegistryProcess | undefined;
  after(async () => {
    await registry?.stop();
    if (registry) await fs.rm(registry.storagePath, { recursive: true, force: true });
  });

  it('answers 503 UNAVAILABLE when a build runs past NIX_TIMEOUT, and leaves no builder running', async () => {
    registry = await startRegistry({ env: { NIX_TIMEOUT: '2' } });
    const started = Date.now();
    // `slow` sleeps for 30 s in its builder.
    const response = await fetch(`${registry.url}/v2/slow/manifests/latest`);
    const elapsed = Date.now() - started;
    assert.equal(response.status, 503);
    const body = (await response.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]!.code, 'UNAVAILABLE');
    assert.match(body.errors[0]!.message, /within 2 s/);
    assert.ok(elapsed < 20_000, `answered after ${elapsed} ms, long before the builder would finish`);
    assert.equal((await fetch(`${registry.url}/v2/`)).status, 200);
    assert.deepEqual(processesMatching('slow-1.0: sleeping'), [], 'the sleeping builder was stopped');
  });
});
