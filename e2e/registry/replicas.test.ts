// Several `nixery serve` processes on one storage directory, as the replicas of a NixeryInstance
// on a ReadWriteMany volume: one build per image across them (the build lease), a build whose
// replica is killed taken over once its lease expires, and garbage collection on one replica at a
// time (the GC lease), completed by another after the collecting replica is killed mid-run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { eventually, run, stopChild, within } from '@nixery/test-support';
import { FilesystemStorage } from '../../registry/src/storage/filesystem.ts';
import { metricValue } from '../support/metrics.ts';
import { NIXERY_BIN, startRegistry, tempDir, type RegistryProcess } from '../support/registry.ts';
import { coldRequests, metricSum } from '../support/replicas.ts';

/** Short, so that a dead replica's leases expire within seconds. */
const LEASE_SECONDS = 3;
/** `slow` sleeps 30 s in Nix; a taken-over build is that plus the lease expiry and packing. */
const TAKEOVER_BOUND_MS = 150_000;

describe('registry replicas on one storage directory', () => {
  let storagePath: string;
  const replicas: RegistryProcess[] = [];
  const env = {
    NIXERY_LEASE_DURATION: String(LEASE_SECONDS),
    // All requests come from 127.0.0.1.
    NIXERY_CLIENT_BUILDS_PER_MINUTE: '10000',
  };

  before(async () => {
    storagePath = await tempDir('nixery-e2e-replicas-');
    for (let i = 0; i < 3; i++) replicas.push(await startRegistry({ storagePath, env }));
  });
  after(async () => {
    for (const r of replicas) await r.stop();
    await fs.rm(storagePath, { recursive: true, force: true });
  });

  /** The holder recorded in a lease of the storage directory (null: released; undefined: none). */
  async function leaseHolder(name: string): Promise<string | null | undefined> {
    const lease = await new FilesystemStorage(storagePath).readLease(name);
    return lease === null ? undefined : (lease.record?.holder ?? null);
  }

  async function buildLeaseNames(): Promise<string[]> {
    const entries = await fs.readdir(path.join(storagePath, 'leases', 'build')).catch(() => []);
    return entries.map((hex) => `build/${hex}`);
  }

  const heldBy = (holder: string | null | undefined, replica: RegistryProcess) => typeof holder === 'string' && holder.includes(`-${replica.child.pid}-`);

  it('20 concurrent cold requests spread over 3 replicas make exactly one build', async () => {
    const answers = await coldRequests(replicas, 'hello:latest', 20, 300_000);
    assert.deepEqual(answers.statuses, Array(20).fill(200));
    assert.equal(new Set(answers.digests).size, 1, 'every replica serves the same image');
    assert.equal(await metricSum(replicas, 'nixery_builds_total', { result: 'success' }), 1, 'one build in all');
    assert.equal(await metricSum(replicas, 'nixery_lease_events_total', { lease: 'build', event: 'acquired' }), 1);
    assert.equal(await metricSum(replicas, 'nixery_lease_waits_total', { result: 'built_here' }), 0);
    // Released after the build: nobody holds it.
    const [name] = await buildLeaseNames();
    assert.equal(await leaseHolder(name!), null);
  });

  it('kill -9 of the replica building an image: a request waiting on another replica is served after the takeover', async () => {
    const [holder, waiter] = [replicas[0]!, replicas[1]!];
    // The first request's connection dies with its replica.
    const doomed = fetch(`${holder.url}/v2/slow/manifests/latest`).then(
      (r) => r.status,
      () => 'connection lost',
    );
    const lease = await eventually(
      'the first replica holds the build lease of slow',
      async () => {
        for (const name of await buildLeaseNames()) if (heldBy(await leaseHolder(name), holder)) return name;
        return undefined;
      },
      60_000,
      50,
    );
    const busyBefore = await metricValue(waiter.url, 'nixery_lease_events_total', { lease: 'build', event: 'busy' });
    const waiting = fetch(`${waiter.url}/v2/slow/manifests/latest`);
    await eventually('the second replica waits for the first', async () => (await metricValue(waiter.url, 'nixery_lease_events_total', { lease: 'build', event: 'busy' })) > busyBefore || undefined, 30_000, 50);

    await stopChild(holder.child, 'SIGKILL');
    assert.equal(await within(10_000, 'the killed replica’s request', doomed), 'connection lost');
    assert.ok(heldBy(await leaseHolder(lease), holder), 'the dead replica’s lease is left behind, unreleased');

    const response = await within(TAKEOVER_BOUND_MS, 'the waiting request', waiting);
    assert.equal(response.status, 200, await response.text());
    assert.equal(await metricValue(waiter.url, 'nixery_lease_events_total', { lease: 'build', event: 'taken_over' }), 1);
    assert.equal(await metricValue(waiter.url, 'nixery_lease_waits_total', { result: 'built_here' }), 1);
    assert.equal(await leaseHolder(lease), null, 'released by the replica that took it over');
  });

  it('kill -9 in the middle of a garbage collection run: the next run, on another replica, takes the lease over and completes', async () => {
    // Many documents, so that a run lasts long enough to be killed in.
    const junk = path.join(storagePath, 'documents', 'junk');
    await fs.mkdir(junk, { recursive: true });
    for (let i = 0; i < 40_000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => fs.writeFile(path.join(junk, `${i + j}.json`), `{"n":${i + j}}`)));
    }
    const collector = await startRegistry({ storagePath, env: { ...env, NIXERY_GC_INTERVAL: '1' } });
    replicas.push(collector);
    await eventually('the collecting replica holds the GC lease', async () => heldBy(await leaseHolder('gc'), collector) || undefined, 60_000, 5);
    await stopChild(collector.child, 'SIGKILL');
    assert.ok(heldBy(await leaseHolder('gc'), collector), 'killed mid-run: the GC lease is left behind, unreleased');

    const next = await run(process.execPath, [NIXERY_BIN, 'gc'], { env: { ...process.env, STORAGE_PATH: storagePath, ...env }, timeoutMs: 120_000 });
    assert.equal(next.code, 0, next.stderr);
    assert.equal((JSON.parse(next.stdout) as { result: string }).result, 'ok');
    assert.match(next.stderr, /took over an expired lease/);
    assert.equal(await leaseHolder('gc'), null, 'released after the run');
  });

  it('nixery gc waits for a replica that keeps collecting, then exits 75 saying so; --dry-run needs no lease', async () => {
    const storage = new FilesystemStorage(storagePath);
    const current = await storage.readLease('gc');
    const version = await storage.swapLease('gc', current?.version ?? null, { holder: 'replica-still-collecting', expiresMs: Date.now() + 600_000 });
    assert.ok(version);
    const cli = (args: string[]) => run(process.execPath, [NIXERY_BIN, 'gc', ...args], { env: { ...process.env, STORAGE_PATH: storagePath, ...env }, timeoutMs: 120_000 });
    const busy = await cli([]);
    assert.equal(busy.code, 75, busy.stderr);
    assert.match((JSON.parse(busy.stdout) as { error: { message: string } }).error.message, /another replica \(replica-still-collecting\) is collecting garbage on this storage/);
    const dry = await cli(['--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal((JSON.parse(dry.stdout) as { dryRun?: boolean; result: string }).result, 'ok');
    await storage.swapLease('gc', version, null);
  });
});
