// Operator scale on the test API server alone (no node agent: pods never run, Jobs stay
// unstarted): N NixImages applied at once, time until every build Job exists, reconciles per
// second, API requests per NixImage, and write requests during a full resync of unchanged
// objects. The NixeryInstance is made Ready by hand: its Deployment's status subresource says
// one ready replica, a stub answers /v2/ on the Service's ClusterIP, and its own status is set.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { claimClusterIpRange, startApiServer, type ApiServer, type RequestLogEntry } from '@nixery/k8s-harness';
import { OPERATOR_BIN, type Context } from '../lib/context.ts';
import { mapLimit, mkdirp, sleep, startDaemon, type Daemon } from '../lib/exec.ts';
import type { Figures } from '../lib/figures.ts';
import { eventually, freePort, REPO_ROOT } from '@nixery/test-support';

const NS = 'bench';
const FLOOR_NS = 'bench-floor';
const ME = 'nixery-bench';
const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

class Kube {
  /** Requests this client made, so they can be told apart from the operator's. */
  sent = 0;
  private readonly agent: https.Agent;
  private readonly url: URL;
  constructor(server: ApiServer) {
    this.url = new URL(server.url);
    this.agent = new https.Agent({ ca: server.caCertPem, keepAlive: true, maxSockets: 16 });
  }
  request(method: string, pathname: string, body?: unknown, contentType = 'application/json'): Promise<Answer> {
    this.sent++;
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = https.request(
        {
          host: this.url.hostname,
          port: this.url.port,
          method,
          path: pathname,
          agent: this.agent,
          headers: { Accept: 'application/json', ...(payload ? { 'Content-Type': contentType, 'Content-Length': payload.length } : {}) },
          timeout: 60_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: Record<string, unknown> = {};
            try {
              parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
            } catch {
              parsed = { text };
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${pathname} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
  async ok(method: string, pathname: string, body?: unknown, contentType?: string): Promise<Record<string, unknown>> {
    const answer = await this.request(method, pathname, body, contentType);
    if (answer.status >= 300) throw new Error(`${method} ${pathname} answered ${answer.status}: ${JSON.stringify(answer.body).slice(0, 500)}`);
    return answer.body;
  }
  /** How many objects a list has, with one small request. */
  async count(pathname: string): Promise<number> {
    const list = await this.ok('GET', `${pathname}?limit=1`);
    const items = (list.items as unknown[]).length;
    const remaining = Number((list.metadata as { remainingItemCount?: number }).remainingItemCount ?? 0);
    return items + remaining;
  }
  close(): void {
    this.agent.destroy();
  }
}

export async function operatorSuite(ctx: Context, figures: Figures): Promise<void> {
  const n = ctx.sizes.nixImages;
  const dir = mkdirp(path.join(ctx.workDir, 'operator'));
  const range = await claimClusterIpRange();
  let server: ApiServer | undefined;
  let kube: Kube | undefined;
  let operator: Daemon | undefined;
  let stub: http.Server | undefined;
  try {
    server = await startApiServer({ kubeconfigPath: path.join(dir, 'kubeconfig'), serviceClusterIpRange: range.range });
    kube = new Kube(server);
    const k = kube;
    for (const file of fs.readdirSync(path.join(REPO_ROOT, 'crds')).filter((f) => f.endsWith('.yaml'))) {
      for (const doc of parseAllDocuments(fs.readFileSync(path.join(REPO_ROOT, 'crds', file), 'utf8'))) {
        const crd = doc.toJS() as Record<string, unknown> | null;
        if (crd) await k.ok('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      }
    }
    for (const ns of [NS, FLOOR_NS]) await k.ok('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const imagesPath = `/apis/nixery.dev/v1alpha1/namespaces/${NS}/niximages`;
    const instancePath = `/apis/nixery.dev/v1alpha1/namespaces/${NS}/nixeryinstances/nixery`;
    await k.ok('POST', `/apis/nixery.dev/v1alpha1/namespaces/${NS}/nixeryinstances?fieldManager=${ME}`, {
      apiVersion: 'nixery.dev/v1alpha1',
      kind: 'NixeryInstance',
      metadata: { name: 'nixery', namespace: NS },
      spec: { storage: { persistentVolume: { size: '10Gi' } }, service: { port: 5000 } },
    });

    const healthPort = await freePort();
    const metricsUrl = `http://127.0.0.1:${healthPort}/metrics`;
    operator = await startDaemon(
      'nixery-operator',
      process.execPath,
      [OPERATOR_BIN, '--health-port', String(healthPort), '--health-host', '127.0.0.1', '--resync-seconds', String(ctx.sizes.resyncSeconds)],
      {
        env: { ...process.env, KUBECONFIG: server.kubeconfigPath, POD_NAMESPACE: 'default' },
        logFile: path.join(dir, 'operator.log'),
        ready: async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 200,
      },
    );

    // Make the instance Ready: a ready replica, a registry answering on the Service, and the status.
    const service = await eventually('the registry Service', async () => {
      const a = await k.request('GET', `/api/v1/namespaces/${NS}/services/nixery`);
      return a.status === 200 && (a.body.spec as { clusterIP?: string }).clusterIP ? a.body : undefined;
    }, 60_000, 500);
    const clusterIP = (service.spec as { clusterIP: string }).clusterIP;
    stub = http.createServer((_req, res) => res.writeHead(200, { 'Docker-Distribution-API-Version': 'registry/2.0' }).end('{}'));
    await new Promise<void>((resolve, reject) => {
      stub!.once('error', reject);
      stub!.listen(5000, clusterIP, resolve);
    });
    const deployment = await eventually('the registry Deployment', async () => {
      const a = await k.request('GET', `/apis/apps/v1/namespaces/${NS}/deployments/nixery`);
      return a.status === 200 ? a.body : undefined;
    }, 60_000, 500);
    const generation = (deployment.metadata as { generation?: number }).generation ?? 1;
    await k.ok('PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/nixery/status?fieldManager=${ME}`, { status: { observedGeneration: generation, replicas: 1, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1 } }, 'application/merge-patch+json');
    const now = new Date().toISOString();
    await k.ok('PATCH', `${instancePath}/status?fieldManager=${ME}`, {
      status: { observedGeneration: 1, readyReplicas: 1, conditions: [{ type: 'Ready', status: 'True', reason: 'RegistryAnswering', message: 'set by the benchmark', lastTransitionTime: now, observedGeneration: 1 }] },
    }, 'application/merge-patch+json');
    await eventually('the NixeryInstance to be Ready', async () => {
      const a = await k.ok('GET', instancePath);
      const conditions = ((a.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions) ?? [];
      return conditions.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
    }, 60_000, 500);
    await quiet(server, 1000, 30_000);

    // N NixImages at once.
    const logStart = server.requestLog.length;
    const sentStart = k.sent;
    const reconcilesStart = await reconciles(metricsUrl);
    const started = performance.now();
    await mapLimit(Array.from({ length: n }, (_, i) => i), 8, async (i) => {
      const name = `img-${String(i).padStart(4, '0')}`;
      await k.ok('PATCH', `${imagesPath}/${name}?fieldManager=${ME}&force=true`, {
        apiVersion: 'nixery.dev/v1alpha1',
        kind: 'NixImage',
        metadata: { name, namespace: NS },
        spec: { instanceRef: { name: 'nixery' }, packages: ['hello', `tool${i % 7}`], tag: 'v1' },
      }, 'application/apply-patch+yaml');
    });
    const appliedMs = performance.now() - started;
    const deadline = ctx.smoke ? 120_000 : 900_000;
    await eventually(`${n} build Jobs`, async () => ((await k.count(`/apis/batch/v1/namespaces/${NS}/jobs`)) >= n ? true : undefined), deadline, 100);
    const jobsMs = performance.now() - started;
    const reconcilesAtJobs = await reconciles(metricsUrl);
    await quiet(server, 2000, deadline);
    const settledMs = performance.now() - started;
    const burst = server.requestLog.slice(logStart).filter((r) => !isLease(r));
    const theirs = burst.length - (k.sent - sentStart);
    const theirWrites = burst.filter((r) => WRITE_VERBS.has(r.verb) && r.fieldManager !== ME);
    ctx.log(`operator: ${n} NixImages applied in ${appliedMs.toFixed(0)} ms; every Job after ${jobsMs.toFixed(0)} ms; settled after ${settledMs.toFixed(0)} ms; ${theirs} operator requests (${theirWrites.length} writes)`);

    // A full resync of unchanged objects: every object is reconciled again, nothing is written.
    const resyncLogStart = server.requestLog.length;
    const resyncReconcilesStart = await reconciles(metricsUrl);
    const resyncStarted = performance.now();
    const resynced = await eventually('a full resync', async () =>
      (await reconciles(metricsUrl)) - resyncReconcilesStart >= n + 1 ? true : undefined, (ctx.sizes.resyncSeconds * 3 + 60) * 1000, 200).catch(() => false);
    await quiet(server, 1500, 60_000);
    const resyncMs = performance.now() - resyncStarted;
    const resync = server.requestLog.slice(resyncLogStart).filter((r) => !isLease(r));
    const resyncWrites = resync.filter((r) => WRITE_VERBS.has(r.verb) && r.fieldManager !== ME);
    const resyncReconciles = (await reconciles(metricsUrl)) - resyncReconcilesStart;
    ctx.log(`operator: resync: ${resyncReconciles} reconciles in ${resyncMs.toFixed(0)} ms, ${resync.length} requests, ${resyncWrites.length} writes${resyncWrites.length ? ` (${summarise(resyncWrites)})` : ''}`);

    // The floor: the same Jobs created directly by one client, two at a time (the operator's workers).
    const jobs = ((await k.ok('GET', `/apis/batch/v1/namespaces/${NS}/jobs`)).items as Record<string, unknown>[]).slice(0, n);
    const floorStarted = performance.now();
    await mapLimit(jobs, 2, async (job) => {
      const metadata = job.metadata as { name: string; labels?: Record<string, string> };
      await k.ok('POST', `/apis/batch/v1/namespaces/${FLOOR_NS}/jobs?fieldManager=${ME}`, {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name: metadata.name, namespace: FLOOR_NS, ...(metadata.labels ? { labels: metadata.labels } : {}) },
        spec: job.spec,
      });
    });
    const floorMs = performance.now() - floorStarted;

    figures.add({
      id: 'operator.jobs_time',
      label: `${n} NixImages applied: time until every build Job exists`,
      unit: 's',
      better: 'lower',
      ours: jobsMs / 1000,
      baseline: floorMs / 1000,
      baselineLabel: `one client creating the ${n} Jobs, 2 at a time`,
    });
    figures.add({
      id: 'operator.reconciles_per_second',
      label: 'reconciles per second while the Jobs are created',
      unit: '/s',
      better: 'higher',
      ours: (reconcilesAtJobs - reconcilesStart) / (jobsMs / 1000),
      baselineLabel: 'absolute',
      note: `nixery_operator_reconciles_total went up by ${reconcilesAtJobs - reconcilesStart} for ${n} NixImages (2 workers per controller).`,
    });
    figures.add({
      id: 'operator.requests_per_image',
      label: 'API requests per NixImage (until settled)',
      unit: '',
      better: 'lower',
      ours: theirs / n,
      baselineLabel: 'absolute',
      note: `of which writes ${(theirWrites.length / n).toFixed(2)} per NixImage: ${summarise(theirWrites)}; the leader Lease and this benchmark's own requests are excluded.`,
    });
    figures.add({
      id: 'operator.resync_writes',
      label: `write requests during a full resync of ${n + 1} unchanged objects`,
      unit: '',
      better: 'lower',
      ours: resyncWrites.length,
      baselineLabel: 'absolute',
      target: { kind: 'abs-eq', value: 0 },
      note: `${resyncReconciles} reconciles${resynced ? '' : ' (the resync did not complete in time)'}, ${resync.length} requests in all (${(resync.length / Math.max(1, resyncReconciles)).toFixed(2)} per reconcile), Lease renewals excluded${resyncWrites.length ? `; writes: ${summarise(resyncWrites)}` : ''}.`,
    });
  } finally {
    await operator?.stop();
    if (stub) await new Promise<void>((resolve) => stub!.close(() => resolve()));
    kube?.close();
    await server?.stop();
    await range.release();
  }
}

function isLease(r: RequestLogEntry): boolean {
  return r.path.includes('/leases/');
}

function summarise(entries: RequestLogEntry[]): string {
  const counts = new Map<string, number>();
  for (const e of entries) {
    // /api/v1/namespaces/ns/jobs[/name[/status]] or /apis/group/version/namespaces/ns/...
    const [resource = e.path, , sub] = e.path.replace(/^\/apis?\/(?:[^/]+\/)?[^/]+\/namespaces\/[^/]+\//, '').split('/');
    const kind = sub ? `${resource}/${sub}` : resource;
    const key = `${e.verb} ${kind}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()].map(([k, v]) => `${v} ${k}`).join(', ') || 'none';
}

async function reconciles(url: string): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^nixery_operator_reconciles_total(?:\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (match) sum += Number(match[1]);
  }
  return sum;
}

/** Waits until no request other than Lease renewals arrived for `quietMs` (at most `timeoutMs`). */
async function quiet(server: ApiServer, quietMs: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = server.requestLog.length;
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(100);
    const now = server.requestLog.length;
    if (now !== seen && server.requestLog.slice(seen).some((r) => !isLease(r))) {
      since = Date.now();
    }
    seen = now;
    if (Date.now() - since >= quietMs) return;
  }
}


