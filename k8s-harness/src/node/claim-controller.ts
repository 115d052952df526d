// PersistentVolumeClaims on this node: each is Bound at once to a directory of its own under the
// data directory (no PersistentVolume objects); the directory goes when the claim does.
import fs from 'node:fs/promises';
import type { ControllerContext } from './controller-context.ts';
import { isNotFound, keyOf, mergePatch, splitKey, WorkQueue, type Key } from './kube.ts';
import { claimDir } from './volumes.ts';

export function startClaimController(ctx: ControllerContext, dataDir: string): WorkQueue {
  const { kube, caches } = ctx;

  async function reconcile(key: Key): Promise<void> {
    const { namespace, name } = splitKey(key);
    const claim = caches.claims.get(namespace, name);
    if (!claim) {
      await fs.rm(claimDir(dataDir, namespace, name), { recursive: true, force: true });
      return;
    }
    if (claim.metadata?.deletionTimestamp) return;
    await fs.mkdir(claimDir(dataDir, namespace, name), { recursive: true });
    if (claim.status?.phase === 'Bound') return;
    const status = {
      phase: 'Bound',
      accessModes: claim.spec?.accessModes ?? ['ReadWriteOnce'],
      capacity: { storage: claim.spec?.resources?.requests?.storage ?? '1Gi' },
    };
    await kube.core.patchNamespacedPersistentVolumeClaimStatus({ namespace, name, body: { status } }, mergePatch).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
  }

  const queue = new WorkQueue('persistentvolumeclaim', reconcile, ctx.log, 1);
  caches.claims.on((claim) => queue.add(keyOf(claim)));
  for (const claim of caches.claims.list()) queue.add(keyOf(claim));
  return queue;
}
