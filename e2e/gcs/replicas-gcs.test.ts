// Replicas of the registry on one GCS bucket (the emulator): one build per image across them, the
// build lease being an object created with ifGenerationMatch=0 and replaced or deleted only at
// the generation its holder last wrote; a build whose replica is killed is taken over by a
// replica waiting for it once the lease expires.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { eventually, stopChild, within } from '@nixery/test-support';
import { silentLogger } from '../../registry/src/log/logger.ts';
import { GcsStorage } from '../../registry/src/storage/gcs.ts';
import { metricValue } from '../support/metrics.ts';
import { startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';
import { coldRequests, metricSum } from '../support/replicas.ts';
import { startGcsEmulator, type GcsEmulator } from './emulator.ts';

const BUCKET = 'nixery-e2e-replicas';

describe('registry replicas on one GCS bucket (emulated)', () => {
  let emulator: GcsEmulator;
  let work: string;
  const replicas: RegistryProcess[] = [];

  before(async () => {
    emulator = await startGcsEmulator({ buckets: [BUCKET] });
    work = await tempDir('nixery-e2e-gcs-replicas-');
    const env = {
      NIXERY_STORAGE_BACKEND: 'gcs',
      GCS_BUCKET: BUCKET,
      STORAGE_EMULATOR_HOST: emulator.url,
      NIXERY_LEASE_DURATION: '3',
      NIXERY_CLIENT_BUILDS_PER_MINUTE: '10000',
    };
    // STORAGE_PATH is not used with gcs; keep startRegistry's directory inside ours.
    for (let i = 0; i < 3; i++) replicas.push(await startRegistry({ env, storagePath: path.join(work, 'unused-storage') }));
    // This process reads the leases as the replicas see them.
    process.env.STORAGE_EMULATOR_HOST = emulator.url;
  });

  /** The build leases in the bucket, by name, with their holders. */
  async function buildLeases(): Promise<Map<string, string | null>> {
    const storage = new GcsStorage({ bucket: BUCKET, log: silentLogger });
    const leases = new Map<string, string | null>();
    for (const object of emulator.objectNames(BUCKET, 'leases/build/')) {
      const name = object.slice('leases/'.length, -'.json'.length);
      const lease = await storage.readLease(name);
      if (lease) leases.set(name, lease.record?.holder ?? null);
    }
    return leases;
  }
  after(async () => {
    for (const r of replicas) await r.stop();
    await emulator?.close();
    await fs.rm(work, { recursive: true, force: true });
  });

  it('20 concurrent cold requests spread over 3 replicas make exactly one build', async () => {
    const answers = await coldRequests(replicas, 'hello:latest', 20, 300_000);
    assert.deepEqual(answers.statuses, Array(20).fill(200));
    assert.equal(new Set(answers.digests).size, 1, 'every replica serves the same image');
    assert.equal(await metricSum(replicas, 'nixery_builds_total', { result: 'success' }), 1, 'one build in all');
    assert.equal(await metricSum(replicas, 'nixery_lease_events_total', { lease: 'build', event: 'acquired' }), 1);
    // Released after the build: the lease object is deleted.
    assert.deepEqual(emulator.objectNames(BUCKET, 'leases/'), []);
  });

  it('kill -9 of the replica building an image: a request waiting on another replica is served after the takeover', async () => {
    const [holder, waiter] = [replicas[0]!, replicas[1]!];
    const heldByHolder = (h: string | null | undefined) => typeof h === 'string' && h.includes(`-${holder.child.pid}-`);
    const doomed = fetch(`${holder.url}/v2/slow/manifests/latest`).then(
      (r) => r.status,
      () => 'connection lost',
    );
    const lease = await eventually('the first replica holds the build lease of slow', async () => [...(await buildLeases())].find(([, h]) => heldByHolder(h))?.[0], 60_000, 50);
    const waiting = fetch(`${waiter.url}/v2/slow/manifests/latest`);
    await eventually('the second replica waits for the first', async () => (await metricValue(waiter.url, 'nixery_lease_events_total', { lease: 'build', event: 'busy' })) > 0 || undefined, 30_000, 50);

    await stopChild(holder.child, 'SIGKILL');
    assert.equal(await within(10_000, 'the killed replica’s request', doomed), 'connection lost');
    assert.ok(heldByHolder((await buildLeases()).get(lease)), 'the dead replica’s lease is left behind, unreleased');

    const response = await within(150_000, 'the waiting request', waiting);
    assert.equal(response.status, 200, await response.text());
    assert.equal(await metricValue(waiter.url, 'nixery_lease_events_total', { lease: 'build', event: 'taken_over' }), 1);
    assert.equal((await buildLeases()).has(lease), false, 'released (deleted) by the replica that took it over');
  });
});
