// The API server as @kubernetes/client-node sees it: typed and custom-object clients, watches,
// informers (including recovery from 410 Gone), and the deletion machinery controllers
// depend on: finalizers, owner references with every propagation policy, namespaces.
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer, PatchStrategy, setHeaderOptions, Watch } from '@kubernetes/client-node';
import type { V1ConfigMap, V1OwnerReference } from '@kubernetes/client-node';
import { eventually } from '@nixery/test-support';
import { startTestServer, WIDGET_CRD } from './testing.ts';
import type { TestServer } from './testing.ts';
import { parse as parseYaml } from 'yaml';

function clientFor(t: TestServer): { kc: KubeConfig; core: CoreV1Api; apps: AppsV1Api; custom: CustomObjectsApi } {
  const kc = new KubeConfig();
  kc.loadFromFile(t.server.kubeconfigPath);
  return { kc, core: kc.makeApiClient(CoreV1Api), apps: kc.makeApiClient(AppsV1Api), custom: kc.makeApiClient(CustomObjectsApi) };
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

function ownedBy(owner: { metadata?: { name?: string; uid?: string } }, blockOwnerDeletion = false): V1OwnerReference {
  return { apiVersion: 'v1', kind: 'ConfigMap', name: owner.metadata?.name ?? '', uid: owner.metadata?.uid ?? '', blockOwnerDeletion };
}

describe('client-node against the API server', () => {
  let t: TestServer;
  let c: ReturnType<typeof clientFor>;
  before(async () => {
    t = await startTestServer({ bookmarkIntervalMs: 100 });
    c = clientFor(t);
  });
  after(async () => {
    await t.stop();
  });

  it('a watch delivers every change in order, from the resourceVersion of a list', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'watched' } } });
    const list = await c.core.listNamespacedConfigMap({ namespace: 'watched' });
    const events: { type: string; value: string | undefined; rv: number }[] = [];
    let bookmarks = 0;
    const watch = await new Watch(c.kc).watch(
      '/api/v1/namespaces/watched/configmaps',
      { resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
      (type, obj: V1ConfigMap) => {
        if (type === 'BOOKMARK') bookmarks++;
        else events.push({ type, value: obj.data?.n, rv: Number(obj.metadata?.resourceVersion) });
      },
      () => undefined,
    );
    try {
      await c.core.createNamespacedConfigMap({ namespace: 'watched', body: { metadata: { name: 'counter' }, data: { n: '0' } } });
      for (let i = 1; i <= 3; i++) {
        const current = await c.core.readNamespacedConfigMap({ name: 'counter', namespace: 'watched' });
        await c.core.replaceNamespacedConfigMap({ name: 'counter', namespace: 'watched', body: { ...current, data: { n: String(i) } } });
      }
      await c.core.deleteNamespacedConfigMap({ name: 'counter', namespace: 'watched' });
      await eventually('all events', () => (events.length === 5 && bookmarks > 0) || undefined, 5000, 25);
      assert.deepEqual(events.map((e) => `${e.type}:${e.value ?? ''}`), ['ADDED:0', 'MODIFIED:1', 'MODIFIED:2', 'MODIFIED:3', 'DELETED:3']);
      assert.ok(events.every((e, i) => i === 0 || e.rv > (events[i - 1]?.rv ?? 0)), 'resourceVersions increase');
    } finally {
      watch.abort();
    }
  });

  it('rejects a stale replace with 409 and an unknown object with 404', async () => {
    const created = await c.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'versioned' }, data: { v: '1' } } });
    await c.core.replaceNamespacedConfigMap({ name: 'versioned', namespace: 'default', body: { ...created, data: { v: '2' } } });
    assert.equal(await status(c.core.replaceNamespacedConfigMap({ name: 'versioned', namespace: 'default', body: { ...created, data: { v: '3' } } })), 409);
    assert.equal(await status(c.core.readNamespacedConfigMap({ name: 'absent', namespace: 'default' })), 404);
    assert.equal(await status(c.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'versioned' } } })), 409);
  });

  it('pages lists with limit and continue, and filters by label and field selectors', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'paged' } } });
    for (let i = 0; i < 5; i++) {
      await c.core.createNamespacedConfigMap({ namespace: 'paged', body: { metadata: { name: `cm-${i}`, labels: { parity: i % 2 === 0 ? 'even' : 'odd' } } } });
    }
    // `parity` leaves out the namespace's kube-root-ca.crt
    const first = await c.core.listNamespacedConfigMap({ namespace: 'paged', limit: 2, labelSelector: 'parity' });
    assert.deepEqual(first.items.map((i) => i.metadata?.name), ['cm-0', 'cm-1']);
    assert.equal(first.metadata?.remainingItemCount, 3);
    const second = await c.core.listNamespacedConfigMap({ namespace: 'paged', limit: 2, labelSelector: 'parity', _continue: first.metadata?._continue });
    assert.deepEqual(second.items.map((i) => i.metadata?.name), ['cm-2', 'cm-3']);
    const even = await c.core.listNamespacedConfigMap({ namespace: 'paged', labelSelector: 'parity in (even),parity!=odd' });
    assert.deepEqual(even.items.map((i) => i.metadata?.name), ['cm-0', 'cm-2', 'cm-4']);
    const named = await c.core.listConfigMapForAllNamespaces({ fieldSelector: 'metadata.name=cm-3,metadata.namespace=paged' });
    assert.deepEqual(named.items.map((i) => i.metadata?.name), ['cm-3']);
    assert.equal(await status(c.core.listNamespacedConfigMap({ namespace: 'paged', fieldSelector: 'data.x=1' })), 400);
  });

  it('an informer lists again after its watch gets 410 Gone', async () => {
    const small = await startTestServer({ watchHistorySize: 2 });
    const sc = clientFor(small);
    try {
      let lists = 0;
      const informer = makeInformer(sc.kc, '/api/v1/namespaces/default/configmaps', async () => {
        const list = await sc.core.listNamespacedConfigMap({ namespace: 'default' });
        lists++;
        if (lists === 1) {
          // five writes between the list and the watch push its resourceVersion out of history
          for (let i = 0; i < 5; i++) await sc.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: `late-${i}` } } });
        }
        return list;
      });
      const errors: unknown[] = [];
      informer.on('error', (err) => errors.push(err));
      await informer.start();
      await eventually('informer to catch up', () => informer.list('default').filter((o) => o.metadata?.name?.startsWith('late-')).length === 5 || undefined, 5000, 25);
      // the second list alone brings the late objects; the watch after it may still be on its way
      const watches = () => small.server.requestLog.filter((r) => r.verb === 'watch' && r.path.endsWith('/configmaps')).length;
      await eventually('the informer to watch again after relisting', () => watches() >= 2 || undefined, 5000, 25);
      await informer.stop();
      assert.equal(lists, 2);
      assert.deepEqual(errors, []);
    } finally {
      await small.stop();
    }
  });

  it('holds deletion while finalizers remain and forbids adding new ones', async () => {
    await c.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'guarded', finalizers: ['example.com/hold'] } } });
    await c.core.deleteNamespacedConfigMap({ name: 'guarded', namespace: 'default' });
    const held = await c.core.readNamespacedConfigMap({ name: 'guarded', namespace: 'default' });
    assert.ok(held.metadata?.deletionTimestamp);
    assert.equal(await status(c.core.patchNamespacedConfigMap({ name: 'guarded', namespace: 'default', body: [{ op: 'add', path: '/metadata/finalizers/-', value: 'example.com/more' }] })), 422);
    await c.core.patchNamespacedConfigMap({ name: 'guarded', namespace: 'default', body: { metadata: { finalizers: null } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    assert.equal(await status(c.core.readNamespacedConfigMap({ name: 'guarded', namespace: 'default' })), 404);
  });

  it('garbage-collects dependents in the background and in the foreground, and orphans on request', async () => {
    const owner = await c.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'owner-bg' } } });
    await c.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'dep-bg', ownerReferences: [ownedBy(owner)] } } });
    await c.core.deleteNamespacedConfigMap({ name: 'owner-bg', namespace: 'default' });
    await eventually('background dependent deleted', async () => (await status(c.core.readNamespacedSecret({ name: 'dep-bg', namespace: 'default' }))) === 404 || undefined, 5000, 25);

    const fg = await c.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'owner-fg' } } });
    await c.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'dep-fg', finalizers: ['example.com/hold'], ownerReferences: [ownedBy(fg, true)] } } });
    await c.core.deleteNamespacedConfigMap({ name: 'owner-fg', namespace: 'default', propagationPolicy: 'Foreground' });
    const dependent = await eventually('dependent marked for deletion', async () => {
      const d = await c.core.readNamespacedSecret({ name: 'dep-fg', namespace: 'default' });
      return d.metadata?.deletionTimestamp ? d : undefined;
    }, 5000, 25);
    const waitingOwner = await c.core.readNamespacedConfigMap({ name: 'owner-fg', namespace: 'default' });
    assert.deepEqual(waitingOwner.metadata?.finalizers, ['foregroundDeletion'], 'the owner waits for its blocking dependent');
    assert.ok(dependent.metadata?.deletionTimestamp);
    await c.core.patchNamespacedSecret({ name: 'dep-fg', namespace: 'default', body: [{ op: 'remove', path: '/metadata/finalizers' }] });
    await eventually('foreground owner deleted', async () => (await status(c.core.readNamespacedConfigMap({ name: 'owner-fg', namespace: 'default' }))) === 404 || undefined, 5000, 25);

    const orphaning = await c.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'owner-orphan' } } });
    await c.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'dep-orphan', ownerReferences: [ownedBy(orphaning)] } } });
    await c.core.deleteNamespacedConfigMap({ name: 'owner-orphan', namespace: 'default', propagationPolicy: 'Orphan' });
    await eventually('orphaning owner deleted', async () => (await status(c.core.readNamespacedConfigMap({ name: 'owner-orphan', namespace: 'default' }))) === 404 || undefined, 5000, 25);
    const orphan = await c.core.readNamespacedSecret({ name: 'dep-orphan', namespace: 'default' });
    assert.equal(orphan.metadata?.ownerReferences, undefined);
  });

  it('deleting a namespace deletes what is in it', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'doomed' } } });
    await c.core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'inside' } } });
    // a finalizer keeps the namespace terminating until the test lets go
    await c.core.createNamespacedSecret({ namespace: 'doomed', body: { metadata: { name: 'held', finalizers: ['example.com/hold'] } } });
    await c.apps.createNamespacedDeployment({
      namespace: 'doomed',
      body: { metadata: { name: 'app' }, spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } } },
    });
    await c.core.deleteNamespace({ name: 'doomed' });
    assert.equal((await c.core.readNamespace({ name: 'doomed' })).status?.phase, 'Terminating');
    assert.equal(await status(c.core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'late' } } })), 403);
    await eventually('content deleted', async () => (await status(c.core.readNamespacedConfigMap({ name: 'inside', namespace: 'doomed' }))) === 404 || undefined, 5000, 25);
    assert.equal((await c.core.readNamespace({ name: 'doomed' })).status?.phase, 'Terminating');
    await c.core.patchNamespacedSecret({ name: 'held', namespace: 'doomed', body: [{ op: 'remove', path: '/metadata/finalizers' }] });
    await eventually('namespace gone', async () => (await status(c.core.readNamespace({ name: 'doomed' }))) === 404 || undefined, 5000, 25);
    assert.equal((await c.core.listConfigMapForAllNamespaces({ fieldSelector: 'metadata.namespace=doomed' })).items.length, 0);
  });

  it('serves custom resources with a status subresource, server-side apply and generations', async () => {
    await fetchApply(t, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com', parseYaml(WIDGET_CRD) as object);
    const body = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'applied' }, spec: { size: 'large', replicas: 1 } };
    const created = (await c.custom.patchNamespacedCustomObject(
      { group: 'example.com', version: 'v1', namespace: 'default', plural: 'widgets', name: 'applied', body, fieldManager: 'operator', force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    )) as { metadata: { generation: number; managedFields: { manager: string; operation: string }[] } };
    assert.equal(created.metadata.generation, 1);
    assert.deepEqual(created.metadata.managedFields.map((m) => `${m.manager}/${m.operation}`), ['operator/Apply']);
    await c.custom.patchNamespacedCustomObjectStatus(
      { group: 'example.com', version: 'v1', namespace: 'default', plural: 'widgets', name: 'applied', body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'applied' }, status: { replicas: 1 } }, fieldManager: 'operator', force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
    const after = (await c.custom.getNamespacedCustomObject({ group: 'example.com', version: 'v1', namespace: 'default', plural: 'widgets', name: 'applied' })) as { metadata: { generation: number }; status: { replicas: number } };
    assert.equal(after.status.replicas, 1);
    assert.equal(after.metadata.generation, 1, 'status writes do not bump the generation');
    const invalid = await status(c.custom.createNamespacedCustomObject({ group: 'example.com', version: 'v1', namespace: 'default', plural: 'widgets', body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'bad' }, spec: { replicas: 9 } } }));
    assert.equal(invalid, 422);
  });
});

/** A raw server-side apply, as a controller's apply of a whole object would send it. */
async function fetchApply(t: TestServer, path: string, body: object): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const req = request(`${t.server.url}${path}?fieldManager=test&force=true`, { method: 'PATCH', ca: t.server.caCertPem, headers: { 'Content-Type': 'application/apply-patch+yaml' } }, (res) => {
      res.resume();
      res.on('end', () => ((res.statusCode ?? 500) < 300 ? resolve() : reject(new Error(`apply ${path}: ${res.statusCode ?? 0}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
