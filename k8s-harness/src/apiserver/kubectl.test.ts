// The API server as kubectl sees it: apply (client-side and server-side), get with every
// output format, patch, replace, delete, wait, explain, logs, for built-ins and a CRD.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { servingCerts } from './certs.ts';
import { startTestServer, WIDGET_CRD } from './testing.ts';
import type { TestServer } from './testing.ts';

const DEPLOYMENT = (envValue: string): string => `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
        env: [{name: GREETING, value: "${envValue}"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: "${envValue}"}
`;

describe('kubectl against the API server', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.stop();
  });

  const writes = (): { method: string; path: string; verb: string }[] => t.server.requestLog.filter((r) => !['get', 'list', 'watch'].includes(r.verb));

  it('creates on first apply (GET then POST) and patches on re-apply', async () => {
    const before = t.server.requestLog.length;
    assert.match(await t.kubectlOk(['apply', '-f', '-'], DEPLOYMENT('hello')), /deployment.apps\/web created/);
    const first = t.server.requestLog.slice(before).filter((r) => r.path.endsWith('/deployments/web') || r.path.endsWith('/deployments'));
    assert.deepEqual(first.map((r) => r.verb), ['get', 'create']);

    const mark = t.server.requestLog.length;
    assert.match(await t.kubectlOk(['apply', '-f', '-'], DEPLOYMENT('bye')), /deployment.apps\/web configured/);
    assert.ok(t.server.requestLog.slice(mark).some((r) => r.verb === 'patch' && r.path.endsWith('/deployments/web')));
    const deploy = JSON.parse(await t.kubectlOk(['get', 'deployment', 'web', '-o', 'json'])) as { metadata: { generation: number }; spec: { template: { spec: { containers: { env: unknown }[] } } } };
    assert.deepEqual(deploy.spec.template.spec.containers[0]?.env, [{ name: 'GREETING', value: 'bye' }]);
    assert.equal(deploy.metadata.generation, 2);
    assert.equal(await t.kubectlOk(['get', 'configmap', 'settings', '-o', 'jsonpath={.data.mode}']), 'bye');
  });

  it('prints tables, custom columns, yaml and jsonpath', async () => {
    const table = await t.kubectlOk(['get', 'deployments']);
    assert.match(table, /^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\s*\nweb\s+0\/2\s+0\s+0\s+\d+s/);
    const columns = await t.kubectlOk(['get', 'deploy', '-o', 'custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas']);
    assert.match(columns, /NAME\s+REPLICAS\nweb\s+2/);
    const yamlOut = await t.kubectlOk(['get', 'cm', 'settings', '-o', 'yaml']);
    assert.match(yamlOut, /kind: ConfigMap/);
    assert.match(yamlOut, /mode: bye/);
    assert.match(await t.kubectlOk(['get', 'cm', '-l', 'app!=nothing', '-o', 'name']), /configmap\/settings/);
    assert.match(await t.kubectlOk(['get', 'all']), /deployment.apps\/web/);
    assert.match(await t.kubectlOk(['describe', 'deployment', 'web']), /Replicas:\s+2 desired/);
  });

  it('merges strategic patches by key and applies JSON patches', async () => {
    await t.kubectlOk(['patch', 'deployment', 'web', '-p', '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.26"}]}}}}']);
    const containers = JSON.parse(await t.kubectlOk(['get', 'deployment', 'web', '-o', 'jsonpath={.spec.template.spec.containers}'])) as { image: string; env: unknown }[];
    assert.equal(containers.length, 1);
    assert.equal(containers[0]?.image, 'nginx:1.26');
    assert.deepEqual(containers[0]?.env, [{ name: 'GREETING', value: 'bye' }]);
    await t.kubectlOk(['patch', 'cm', 'settings', '--type=json', '-p', '[{"op":"add","path":"/data/extra","value":"x"}]']);
    assert.equal(await t.kubectlOk(['get', 'cm', 'settings', '-o', 'jsonpath={.data.extra}']), 'x');
  });

  it('refuses a stale update with 409 Conflict', async () => {
    const stale = await t.kubectlOk(['get', 'cm', 'settings', '-o', 'json']);
    await t.kubectlOk(['patch', 'cm', 'settings', '--type=merge', '-p', '{"data":{"mode":"changed"}}']);
    const replaced = await t.kubectl(['replace', '-f', '-'], stale);
    assert.notEqual(replaced.code, 0);
    assert.match(replaced.stderr, /Operation cannot be fulfilled on configmaps "settings": the object has been modified; please apply your changes to the latest version and try again/);
  });

  it('serves a CRD: printer columns, explain, validation, defaulting, status and scale', async () => {
    await t.kubectlOk(['apply', '-f', '-'], WIDGET_CRD);
    await t.kubectlOk(['wait', '--for=condition=Established', 'crd/widgets.example.com', '--timeout=10s']);
    await t.kubectlOk(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: small}\n');
    assert.match(await t.kubectlOk(['get', 'widgets']), /^NAME\s+SIZE\s+REPLICAS\s+READY\s+AGE\s*\nw1\s+small\s+1\s+\d+s/);

    const rejected = await t.kubectl(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: huge, replicas: 3}\n');
    assert.notEqual(rejected.code, 0);
    assert.match(rejected.stderr, /The Widget "w2" is invalid/);
    assert.match(rejected.stderr, /spec.size: Unsupported value: "huge": supported values: "small", "large"/);
    assert.match(rejected.stderr, /spec: Invalid value: "object": more than one replica needs storage/);
    const unknownField = await t.kubectl(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {size: small, colour: red}\n');
    assert.match(unknownField.stderr, /strict decoding error: unknown field "spec.colour"/);

    const explained = await t.kubectlOk(['explain', 'widgets.spec']);
    assert.match(explained, /KIND:\s+Widget/);
    assert.match(explained, /How big the widget is/);

    await t.kubectlOk(['patch', 'widget', 'w1', '--subresource=status', '--type=merge', '-p', '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}']);
    await t.kubectlOk(['wait', '--for=condition=Ready', 'widget/w1', '--timeout=10s']);
    assert.match(await t.kubectlOk(['get', 'wd', 'w1']), /w1\s+small\s+1\s+True/);
    await t.kubectlOk(['patch', 'widget', 'w1', '--type=merge', '-p', '{"status":{"replicas":7}}']);
    assert.equal(await t.kubectlOk(['get', 'widget', 'w1', '-o', 'jsonpath={.status.replicas}']), '', 'status is written only through /status');
    await t.kubectlOk(['scale', 'widget', 'w1', '--replicas=0']);
    assert.equal(await t.kubectlOk(['get', 'widget', 'w1', '-o', 'jsonpath={.spec.replicas}/{.metadata.generation}']), '0/2');
  });

  it('server-side apply is idempotent and reports conflicts between field managers', async () => {
    const manifest = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned, labels: {team: a}}\ndata: {a: "1", b: "2"}\n';
    await t.kubectlOk(['apply', '--server-side', '-f', '-'], manifest);
    const rv = await t.kubectlOk(['get', 'cm', 'owned', '-o', 'jsonpath={.metadata.resourceVersion}']);
    await t.kubectlOk(['apply', '--server-side', '-f', '-'], manifest);
    assert.equal(await t.kubectlOk(['get', 'cm', 'owned', '-o', 'jsonpath={.metadata.resourceVersion}']), rv, 'a repeated apply writes nothing');

    const other = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned}\ndata: {a: "9"}\n';
    const conflicted = await t.kubectl(['apply', '--server-side', '--field-manager=intruder', '-f', '-'], other);
    assert.notEqual(conflicted.code, 0);
    assert.match(conflicted.stderr, /Apply failed with 1 conflict: conflict with "kubectl": .data.a/);
    await t.kubectlOk(['apply', '--server-side', '--field-manager=intruder', '--force-conflicts', '-f', '-'], other);
    const managed = JSON.parse(await t.kubectlOk(['get', 'cm', 'owned', '-o', 'json', '--show-managed-fields'])) as { data: Record<string, string>; metadata: { managedFields: { manager: string; fieldsV1: { 'f:data'?: Record<string, unknown> } }[] } };
    assert.equal(managed.data.a, '9');
    const byManager = Object.fromEntries(managed.metadata.managedFields.map((m) => [m.manager, Object.keys(m.fieldsV1['f:data'] ?? {})]));
    assert.deepEqual(byManager, { kubectl: ['f:b'], intruder: ['f:a'] });

    // dropping a field from the applied configuration removes it from the object
    await t.kubectlOk(['apply', '--server-side', '-f', '-'], 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned, labels: {team: a}}\ndata: {}\n');
    assert.deepEqual(JSON.parse(await t.kubectlOk(['get', 'cm', 'owned', '-o', 'jsonpath={.data}'])), { a: '9' });
  });

  it('deletes objects and kubectl wait --for=delete returns', async () => {
    const waiting = t.kubectl(['wait', '--for=delete', 'configmap/owned', '--timeout=10s']);
    await new Promise((r) => setTimeout(r, 300));
    await t.kubectlOk(['delete', 'configmap', 'owned']);
    assert.equal((await waiting).code, 0);
    const gone = await t.kubectl(['get', 'configmap', 'owned']);
    assert.match(gone.stderr, /configmaps "owned" not found/);
    assert.ok(writes().some((w) => w.verb === 'delete' && w.path.endsWith('/configmaps/owned')));
  });

  it('streams pod logs from the node agent registered as a Node', async () => {
    const certs = servingCerts();
    const seen: string[] = [];
    const kubelet = https.createServer({ key: certs.keyPem, cert: certs.certPem }, (req, res) => {
      seen.push(req.url ?? '');
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('line one\nline two\n');
    });
    await new Promise<void>((r) => kubelet.listen(0, '127.0.0.1', r));
    try {
      const port = (kubelet.address() as AddressInfo).port;
      const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'nixery-node' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], daemonEndpoints: { kubeletEndpoint: { Port: port } } } };
      await t.kubectlOk(['create', '-f', '-'], JSON.stringify(node));
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'talker' }, spec: { nodeName: 'nixery-node', containers: [{ name: 'main', image: 'busybox' }] } };
      await t.kubectlOk(['create', '-f', '-'], JSON.stringify(pod));
      assert.equal(await t.kubectlOk(['logs', 'talker', '--tail=2']), 'line one\nline two\n');
      assert.deepEqual(seen, ['/containerLogs/default/talker/main?tailLines=2']);
      const missing = await t.kubectl(['logs', 'talker', '-c', 'nope']);
      assert.match(missing.stderr, /container nope is not valid for pod talker/);

      // a scheduled pod terminates gracefully: it stays until the kubelet deletes it with grace 0
      await t.kubectlOk(['delete', 'pod', 'talker', '--wait=false']);
      assert.match(await t.kubectlOk(['get', 'pod', 'talker', '-o', 'jsonpath={.metadata.deletionTimestamp}']), /Z$/);
      await t.kubectlOk(['delete', 'pod', 'talker', '--grace-period=0', '--force']);
      assert.match((await t.kubectl(['get', 'pod', 'talker'])).stderr, /not found/);
    } finally {
      kubelet.close();
      kubelet.closeAllConnections();
    }
  });

  it('honours dry-run', async () => {
    await t.kubectlOk(['create', 'configmap', 'dry', '--from-literal=a=b', '--dry-run=server']);
    assert.match((await t.kubectl(['get', 'cm', 'dry'])).stderr, /not found/);
    assert.ok(fs.existsSync(path.join(t.dir, 'kubeconfig')));
  });
});
