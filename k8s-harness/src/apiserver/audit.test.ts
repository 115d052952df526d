// The audit log (--audit-log-path) as suites read it against a real cluster: one audit.k8s.io/v1
// Event per line, written as requests complete, with what kubectl did and who did it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, exited, spawn, stopChild, waitForOutput } from '@nixery/test-support';
import { KUBECONFIG_TOKEN } from './kubeconfig.ts';
import { startTestServer } from './testing.ts';
import type { TestServer } from './testing.ts';
import type { AuditEvent } from './audit.ts';

const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every line of the log; a line must never be seen half-written. */
function readEvents(file: string): AuditEvent[] {
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'the log ends with a whole line');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditEvent);
}

function request(t: TestServer, method: string, pathAndQuery: string, token: string | undefined = KUBECONFIG_TOKEN): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  const url = new URL(t.server.url);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: url.hostname, port: url.port, method, path: pathAndQuery, ca: t.server.caCertPem, headers: token ? { Authorization: `Bearer ${token}` } : {} },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('audit log', () => {
  let t: TestServer;
  let dir: string;
  let file: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'audit-test-'));
    // a directory that does not exist yet, as a fresh --audit-log-path often names
    file = path.join(dir, 'logs', 'audit.log');
    t = await startTestServer({ auditLogPath: file });
  });
  after(async () => {
    await t?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const completed = () => readEvents(file).filter((e) => e.stage === 'ResponseComplete');

  it('exists from the start and records kubectl requests as Metadata-level events', async () => {
    assert.ok(fs.existsSync(file));
    await t.kubectlOk(['create', 'configmap', 'audited', '--from-literal=a=b']);
    const create = completed().find((e) => e.verb === 'create' && e.objectRef?.resource === 'configmaps');
    assert.ok(create, 'a create event');
    assert.equal(create.kind, 'Event');
    assert.equal(create.apiVersion, 'audit.k8s.io/v1');
    assert.equal(create.level, 'Metadata');
    assert.match(create.auditID, UUID);
    assert.match(create.requestURI, /^\/api\/v1\/namespaces\/default\/configmaps\?fieldManager=kubectl-create&fieldValidation=Strict$/);
    assert.deepEqual(create.user, { username: 'admin', groups: ['system:masters', 'system:authenticated'] });
    assert.deepEqual(create.sourceIPs, ['127.0.0.1']);
    assert.match(create.userAgent ?? '', /^kubectl\//);
    // the name comes from the request body, as upstream's LogRequestObject completes it
    assert.deepEqual(create.objectRef, { resource: 'configmaps', namespace: 'default', name: 'audited', apiVersion: 'v1' });
    assert.deepEqual(create.responseStatus, { metadata: {}, code: 201 });
    assert.match(create.requestReceivedTimestamp, MICRO_TIME);
    assert.match(create.stageTimestamp, MICRO_TIME);
    assert.ok(create.stageTimestamp >= create.requestReceivedTimestamp);
    assert.deepEqual(Object.keys(create), ['kind', 'apiVersion', 'level', 'auditID', 'stage', 'requestURI', 'verb', 'user', 'sourceIPs', 'userAgent', 'objectRef', 'responseStatus', 'requestReceivedTimestamp', 'stageTimestamp']);
    // discovery is not a resource request: no objectRef
    await t.kubectlOk(['get', '--raw', '/api']);
    const discovery = completed().find((e) => e.requestURI === '/api');
    assert.ok(discovery);
    assert.equal(discovery.verb, 'get');
    assert.equal(discovery.objectRef, undefined);
  });

  it('a failed get carries the Status it answered with', async () => {
    const r = await t.kubectl(['get', 'configmap', 'missing', '-o', 'name']);
    assert.notEqual(r.code, 0);
    const get = completed().find((e) => e.verb === 'get' && e.objectRef?.name === 'missing');
    assert.ok(get);
    assert.deepEqual(get.objectRef, { resource: 'configmaps', namespace: 'default', name: 'missing', apiVersion: 'v1' });
    assert.deepEqual(get.responseStatus, { metadata: {}, status: 'Failure', message: 'configmaps "missing" not found', reason: 'NotFound', details: { name: 'missing', group: '', kind: 'configmaps' }, code: 404 });
  });

  it('patches show their field manager in requestURI; group, subresource and namespace objects as upstream', async () => {
    await t.kubectlOk(['patch', 'configmap', 'audited', '--type', 'merge', '-p', '{"data":{"a":"c"}}', '--field-manager', 'auditor']);
    const patch = completed().find((e) => e.verb === 'patch' && e.objectRef?.name === 'audited');
    assert.ok(patch);
    assert.equal(new URL(patch.requestURI, 'https://x').searchParams.get('fieldManager'), 'auditor');
    assert.equal(patch.responseStatus.code, 200);

    await t.kubectlOk(['apply', '--server-side', '-f', '-'], 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n');
    const apply = completed().find((e) => e.verb === 'patch' && e.objectRef?.resource === 'deployments');
    assert.ok(apply);
    assert.equal(new URL(apply.requestURI, 'https://x').searchParams.get('fieldManager'), 'kubectl');
    assert.deepEqual(apply.objectRef, { resource: 'deployments', namespace: 'default', name: 'web', apiGroup: 'apps', apiVersion: 'v1' });
    assert.equal(apply.responseStatus.code, 201);

    await t.kubectlOk(['scale', 'deployment', 'web', '--replicas', '2']);
    const scale = completed().find((e) => e.objectRef?.subresource === 'scale');
    assert.deepEqual(scale?.objectRef, { resource: 'deployments', namespace: 'default', name: 'web', apiGroup: 'apps', apiVersion: 'v1', subresource: 'scale' });

    await t.kubectlOk(['create', 'namespace', 'audited-ns']);
    const ns = completed().find((e) => e.verb === 'create' && e.objectRef?.resource === 'namespaces');
    assert.deepEqual(ns?.objectRef, { resource: 'namespaces', name: 'audited-ns', apiVersion: 'v1' });
  });

  it('a watch gets ResponseStarted when it starts and ResponseComplete when it ends', async () => {
    const out = await t.kubectlOk(['get', '--raw', '/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1']);
    assert.match(out, /"ADDED"/);
    const events = readEvents(file).filter((e) => e.verb === 'watch' && e.objectRef?.resource === 'configmaps');
    assert.deepEqual(events.map((e) => e.stage), ['ResponseStarted', 'ResponseComplete']);
    const [started, complete] = events as [AuditEvent, AuditEvent];
    assert.equal(started.auditID, complete.auditID);
    assert.equal(started.requestReceivedTimestamp, complete.requestReceivedTimestamp);
    assert.ok(complete.stageTimestamp >= started.stageTimestamp);
    assert.deepEqual([started.responseStatus, complete.responseStatus], [{ metadata: {}, code: 200 }, { metadata: {}, code: 200 }]);
    // ordinary requests have no ResponseStarted event
    assert.equal(readEvents(file).filter((e) => e.stage === 'ResponseStarted' && e.verb !== 'watch').length, 0);
  });

  it('the Audit-Id header names the event; a client-sent Audit-Id is kept', async () => {
    const r = await request(t, 'GET', '/api/v1/namespaces/default/configmaps/audited');
    const id = r.headers['audit-id'];
    assert.equal(typeof id, 'string');
    assert.equal(completed().filter((e) => e.auditID === id).length, 1);
    const url = new URL(t.server.url);
    const echoed = await new Promise<string | undefined>((resolve, reject) => {
      https
        .get({ host: url.hostname, port: url.port, path: '/version', ca: t.server.caCertPem, headers: { 'Audit-ID': 'chosen-by-client' } }, (res) => {
          res.resume();
          resolve(res.headers['audit-id'] as string | undefined);
        })
        .on('error', reject);
    });
    assert.equal(echoed, 'chosen-by-client');
    await eventually('the event', () => completed().find((e) => e.auditID === 'chosen-by-client'), 5000, 25);
  });

  it('failed authentication: one ResponseStarted event with no user', async () => {
    const r = await request(t, 'GET', '/api/v1/namespaces/default/pods?limit=1', 'wrong-token');
    assert.equal(r.status, 401);
    const events = readEvents(file).filter((e) => e.auditID === r.headers['audit-id']);
    assert.equal(events.length, 1);
    const [e] = events as [AuditEvent];
    assert.equal(e.stage, 'ResponseStarted');
    assert.deepEqual(e.user, {});
    assert.equal(e.verb, 'list');
    assert.equal(e.requestURI, '/api/v1/namespaces/default/pods?limit=1');
    assert.equal(e.responseStatus.code, 401);
  });

  it('stays parseable line by line while many requests complete at once', async () => {
    const before = readEvents(file).length;
    const reads: number[] = [];
    const requests = Array.from({ length: 60 }, (_, i) => request(t, i % 2 ? 'GET' : 'DELETE', `/api/v1/namespaces/default/configmaps/nothing-${i}`));
    // read while writes happen: every read sees whole lines only
    const reader = (async () => {
      for (let i = 0; i < 20; i++) {
        reads.push(readEvents(file).length);
        await new Promise((r) => setImmediate(r));
      }
    })();
    await Promise.all([...requests, reader]);
    const events = readEvents(file).slice(before);
    assert.equal(events.filter((e) => e.objectRef?.name?.startsWith('nothing-')).length, 60);
    assert.ok(reads.every((n, i) => i === 0 || n >= (reads[i - 1] ?? 0)));
    assert.deepEqual(new Set(events.filter((e) => e.objectRef?.name?.startsWith('nothing-')).map((e) => e.verb)), new Set(['get', 'delete']));
  });
});

describe('audit log from the command line', () => {
  it('main.ts --audit-log-path writes events', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'audit-cli-test-'));
    const file = path.join(dir, 'audit.log');
    const child = spawn(process.execPath, [path.join(import.meta.dirname, 'main.ts'), '--kubeconfig', path.join(dir, 'kubeconfig'), '--audit-log-path', file], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    try {
      const ready = JSON.parse(await waitForOutput(child, /"ready":true/, 30_000)) as { url: string };
      const url = new URL(ready.url);
      await new Promise<void>((resolve, reject) => {
        https.get({ host: url.hostname, port: url.port, path: '/version', rejectUnauthorized: false, signal: AbortSignal.timeout(10_000) }, (res) => res.resume().on('end', resolve)).on('error', reject);
      });
      const events = readEvents(file);
      assert.deepEqual(events.map((e) => [e.requestURI, e.user.username, e.responseStatus.code]), [['/version', 'system:anonymous', 200]]);
      child.kill('SIGTERM');
      await exited(child, 10_000);
    } finally {
      await stopChild(child);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
