// The PodSecurity admission plugin's decisions: namespace labels → policy, pods refused or warned,
// workloads warned only, namespace label validation and warnings about existing pods; then the
// same over HTTP with real kubectl.
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { KUBECONFIG_TOKEN } from './kubeconfig.ts';
import { admitNamespace, admitPod, admitPodController, evaluatePodsInNamespace, isSignificantPodUpdate, policyToEvaluate } from './pod-security-admission.ts';
import type { JsonObject } from './json.ts';
import { startTestServer, type TestServer } from './testing.ts';

const RESTRICTED_MESSAGE =
  'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), ' +
  'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), ' +
  'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), ' +
  'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")';

const pod = (name: string, spec: JsonObject = { containers: [{ name: 'c', image: 'busybox' }] }, metadata: JsonObject = {}): JsonObject => ({ metadata: { name, ...metadata }, spec });
const privilegedPod = (name: string): JsonObject => pod(name, { containers: [{ name: 'c', image: 'busybox', securityContext: { privileged: true } }] });
const ENFORCE = 'pod-security.kubernetes.io/enforce';

describe('PodSecurity admission decisions', () => {
  describe('namespace labels → policy', () => {
    it('no labels: privileged:latest for enforce, audit and warn', () => {
      const { policy, errors } = policyToEvaluate(undefined);
      assert.deepEqual(errors, []);
      assert.deepEqual(policy, { enforce: { level: 'privileged', version: 'latest' }, audit: { level: 'privileged', version: 'latest' }, warn: { level: 'privileged', version: 'latest' } });
    });
    it('an enforce level stricter than warn also sets warn (with its version unless warn-version is set)', () => {
      const { policy } = policyToEvaluate({ [ENFORCE]: 'baseline', 'pod-security.kubernetes.io/enforce-version': 'v1.29' });
      assert.deepEqual(policy.enforce, { level: 'baseline', version: 'v1.29' });
      assert.deepEqual(policy.warn, { level: 'baseline', version: 'v1.29' });
      const explicit = policyToEvaluate({ [ENFORCE]: 'restricted', 'pod-security.kubernetes.io/warn': 'baseline' }).policy;
      assert.deepEqual(explicit.warn, { level: 'baseline', version: 'latest' });
    });
    it('invalid values: enforce falls back to restricted, audit and warn to privileged, versions to latest, each with an error', () => {
      const { policy, errors } = policyToEvaluate({ [ENFORCE]: 'strict', 'pod-security.kubernetes.io/warn': 'loud', 'pod-security.kubernetes.io/enforce-version': '1.30' });
      assert.deepEqual(policy.enforce, { level: 'restricted', version: 'latest' });
      assert.deepEqual(policy.warn, { level: 'privileged', version: 'latest' });
      assert.deepEqual(errors.map((e) => [e.field, e.value, e.detail]), [
        ['metadata.labels[pod-security.kubernetes.io/enforce]', 'strict', 'must be one of privileged, baseline, restricted'],
        ['metadata.labels[pod-security.kubernetes.io/enforce-version]', '1.30', 'must be "latest" or "v1.x"'],
        ['metadata.labels[pod-security.kubernetes.io/warn]', 'loud', 'must be one of privileged, baseline, restricted'],
      ]);
      assert.equal(policyToEvaluate({ 'pod-security.kubernetes.io/enforce-version': 'v1.07' }).errors.length, 1);
      assert.equal(policyToEvaluate({ 'pod-security.kubernetes.io/enforce-version': 'v1.0' }).errors.length, 0);
    });
  });

  describe('pods', () => {
    it('a violating pod is refused with the enforce level and version in the message; no warning then', () => {
      const decision = admitPod({ [ENFORCE]: 'restricted' }, pod('p'), undefined);
      assert.equal(decision.refused, `violates PodSecurity "restricted:latest": ${RESTRICTED_MESSAGE}`);
      assert.deepEqual(decision.warnings, []);
      assert.match(admitPod({ [ENFORCE]: 'baseline', 'pod-security.kubernetes.io/enforce-version': 'v1.30' }, privilegedPod('p'), undefined).refused ?? '', /^violates PodSecurity "baseline:v1\.30": privileged \(container "c"/);
    });
    it('no labels or privileged: anything goes', () => {
      assert.deepEqual(admitPod(undefined, privilegedPod('p'), undefined), { warnings: [] });
      assert.deepEqual(admitPod({ [ENFORCE]: 'privileged' }, privilegedPod('p'), undefined), { warnings: [] });
    });
    it('an invalid enforce level is evaluated as restricted', () => {
      assert.match(admitPod({ [ENFORCE]: 'bogus' }, pod('p'), undefined).refused ?? '', /^violates PodSecurity "restricted:latest": allowPrivilegeEscalation/);
    });
    it('an allowed pod gets a warning for the warn level', () => {
      const decision = admitPod({ [ENFORCE]: 'baseline', 'pod-security.kubernetes.io/warn': 'restricted' }, pod('p'), undefined);
      assert.equal(decision.refused, undefined);
      assert.deepEqual(decision.warnings, [`would violate PodSecurity "restricted:latest": ${RESTRICTED_MESSAGE}`]);
    });
    it('updates are checked only when an image or the number of containers changes', () => {
      const old = pod('p');
      const relabelled = pod('p', undefined, { labels: { a: 'b' } });
      assert.equal(isSignificantPodUpdate(relabelled, old), false);
      assert.deepEqual(admitPod({ [ENFORCE]: 'restricted' }, relabelled, old), { warnings: [] });
      const newImage = pod('p', { containers: [{ name: 'c', image: 'busybox:2' }] });
      assert.equal(isSignificantPodUpdate(newImage, old), true);
      assert.ok(admitPod({ [ENFORCE]: 'restricted' }, newImage, old).refused);
      assert.equal(isSignificantPodUpdate(pod('p', { containers: [{ name: 'c', image: 'busybox' }], ephemeralContainers: [{ name: 'd', image: 'x' }] }), old), true);
    });
  });

  describe('workloads with a pod template', () => {
    const deployment: JsonObject = { metadata: { name: 'web' }, spec: { template: { metadata: {}, spec: { containers: [{ name: 'c', image: 'x' }] } } } };
    it('are warned about (warn level, which enforce sets too) and never refused', () => {
      assert.deepEqual(admitPodController({ [ENFORCE]: 'restricted' }, 'apps', 'Deployment', deployment), [`would violate PodSecurity "restricted:latest": ${RESTRICTED_MESSAGE}`]);
      assert.deepEqual(admitPodController({ [ENFORCE]: 'restricted', 'pod-security.kubernetes.io/warn': 'privileged' }, 'apps', 'Deployment', deployment), []);
      assert.deepEqual(admitPodController(undefined, 'apps', 'Deployment', deployment), []);
    });
    it("a CronJob's template is its jobTemplate's", () => {
      const cronJob = { metadata: { name: 'c' }, spec: { jobTemplate: { spec: { template: { spec: { hostNetwork: true, containers: [] } } } } } };
      assert.deepEqual(admitPodController({ 'pod-security.kubernetes.io/warn': 'baseline' }, 'batch', 'CronJob', cronJob), ['would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)']);
    });
  });

  describe('namespaces', () => {
    const ns = (labels: Record<string, string>): JsonObject => ({ metadata: { name: 'shop', labels } });
    it('invalid labels are refused on create, and on update unless the same errors were there before', () => {
      assert.equal(admitNamespace(ns({ [ENFORCE]: 'strict' }), undefined, () => []).invalid?.length, 1);
      assert.equal(admitNamespace(ns({ [ENFORCE]: 'strict' }), ns({}), () => []).invalid?.length, 1);
      assert.equal(admitNamespace(ns({ [ENFORCE]: 'strict', x: 'y' }), ns({ [ENFORCE]: 'strict' }), () => []).invalid, undefined);
    });
    it('a stricter enforce level warns about existing pods, grouped by their failed checks', () => {
      const pods = [privilegedPod('b'), privilegedPod('a'), pod('fine', { containers: [{ name: 'c', image: 'x' }] }), pod('h', { hostNetwork: true, containers: [] })];
      const decision = admitNamespace(ns({ [ENFORCE]: 'baseline' }), ns({}), () => pods);
      assert.deepEqual(decision, {
        warnings: ['existing pods in namespace "shop" violate the new PodSecurity enforce level "baseline:latest"', 'a (and 1 other pod): privileged', 'h: host namespaces'],
      });
      assert.deepEqual(admitNamespace(ns({ [ENFORCE]: 'privileged' }), ns({ [ENFORCE]: 'baseline' }), () => pods), { warnings: [] });
      assert.deepEqual(admitNamespace(ns({ [ENFORCE]: 'baseline', x: 'y' }), ns({ [ENFORCE]: 'baseline' }), () => pods), { warnings: [] });
    });
    it('counts pods beyond two as "and N other pods"', () => {
      assert.deepEqual(evaluatePodsInNamespace('shop', { level: 'baseline', version: 'latest' }, ['c', 'b', 'a'].map(privilegedPod)).slice(1), ['a (and 2 other pods): privileged']);
    });
  });
});

const NAMESPACE = (labels: string): string => `
apiVersion: v1
kind: Namespace
metadata:
  name: locked
  labels: {${labels}}
`;
const BARE_POD = `
apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: locked}
spec:
  containers: [{name: c, image: busybox}]
`;
const RESTRICTED_POD = `
apiVersion: v1
kind: Pod
metadata: {name: tidy, namespace: locked}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: c
    image: busybox
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`;
const DEPLOYMENT = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: locked}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox}]
`;

describe('PodSecurity admission over HTTP (kubectl)', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.stop();
  });

  it('refuses a violating pod in an enforce=restricted namespace with 403 Forbidden and upstream message', async () => {
    await t.kubectlOk(['apply', '-f', '-'], NAMESPACE('pod-security.kubernetes.io/enforce: restricted'));
    const r = await t.kubectl(['apply', '-f', '-'], BARE_POD);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Error from server \(Forbidden\)/);
    assert.ok(r.stderr.includes(`pods "bare" is forbidden: violates PodSecurity "restricted:latest": ${RESTRICTED_MESSAGE}`), r.stderr);
    assert.match(await t.kubectlOk(['apply', '-f', '-'], RESTRICTED_POD), /pod\/tidy created/);

    const raw = await t.kubectl(['create', '--raw', '/api/v1/namespaces/locked/pods', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'raw' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } }));
    assert.notEqual(raw.code, 0);
    assert.match(raw.stderr, /Forbidden|forbidden/);
  });

  it('answers a Status with reason Forbidden and code 403 (server-side dry run too)', async () => {
    const r = await t.kubectl(['create', '-f', '-', '--dry-run=server', '-o', 'json'], BARE_POD);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /violates PodSecurity "restricted:latest"/);
    const status = await fetchStatus(t);
    assert.equal(status.httpStatus, 403);
    assert.deepEqual({ code: status.code, reason: status.reason, kind: status.kind, details: status.details }, { code: 403, reason: 'Forbidden', kind: 'Status', details: { name: 'bare', group: '', kind: 'pods' } });
  });

  it('warns (and creates) a Deployment whose template violates, and warns about a pod at the warn level', async () => {
    const r = await t.kubectl(['apply', '-f', '-'], DEPLOYMENT);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deployment.apps\/web created/);
    assert.ok(r.stderr.includes(`Warning: would violate PodSecurity "restricted:latest": ${RESTRICTED_MESSAGE}`), r.stderr);

    await t.kubectlOk(['label', 'namespace', 'locked', '--overwrite', 'pod-security.kubernetes.io/enforce=baseline', 'pod-security.kubernetes.io/warn=restricted']);
    const p = await t.kubectl(['apply', '-f', '-'], BARE_POD);
    assert.equal(p.code, 0, p.stderr);
    assert.ok(p.stderr.includes(`Warning: would violate PodSecurity "restricted:latest": ${RESTRICTED_MESSAGE}`), p.stderr);
  });

  it('warns about existing pods when the enforce level gets stricter, and refuses an invalid label value', async () => {
    const r = await t.kubectl(['label', 'namespace', 'locked', '--overwrite', 'pod-security.kubernetes.io/enforce=restricted']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Warning: existing pods in namespace "locked" violate the new PodSecurity enforce level "restricted:latest"/);
    assert.match(r.stderr, /Warning: bare: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile/);

    const bad = await t.kubectl(['label', 'namespace', 'locked', '--overwrite', 'pod-security.kubernetes.io/enforce=strict']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Namespace "locked" is invalid: metadata\.labels\[pod-security\.kubernetes\.io\/enforce\]: Invalid value: "strict": must be one of privileged, baseline, restricted/);
  });
});

/** POSTs a bare pod (dry run) with the kubeconfig's token and returns the answer's status code and Status body. */
function fetchStatus(t: TestServer): Promise<{ httpStatus: number; code: number; reason: string; kind: string; details: unknown }> {
  const url = new URL(t.server.url);
  const body = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'bare' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } });
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: url.hostname, port: url.port, method: 'POST', path: '/api/v1/namespaces/locked/pods?dryRun=All', ca: t.server.caCertPem, timeout: 10_000, headers: { Authorization: `Bearer ${KUBECONFIG_TOKEN}`, 'Content-Type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ httpStatus: res.statusCode ?? 0, ...(JSON.parse(text) as { code: number; reason: string; kind: string; details: unknown }) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}
