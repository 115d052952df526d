// The operator suites run unchanged against a cluster they did not start (a real one, or here
// `nixery-k8s-harness` as a separate process standing in for one): NIXERY_E2E_CLUSTER=existing
// with KUBECONFIG and the API server's audit log. They refuse to touch namespaces that exist
// already, and leave none of theirs behind.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { kubectl, kubectlOk } from '../support/kube.ts';
import { REPO_ROOT, spawn, stopChild, waitForOutput, within } from '@nixery/test-support';

/** The harness as `npx nixery-k8s-harness` runs it: the bin the workspace install links. */
const HARNESS = path.join(REPO_ROOT, 'node_modules/.bin/nixery-k8s-harness');

/** Longer than the suites run here take, within this file's own time limit. */
const SUITES_MS = 540_000;

/** Runs test files in a child `node --test`, as CI would with these variables set. */
async function runSuites(files: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', path.join(REPO_ROOT, 'test-support/src/exit-watchdog.ts'), '--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
    cwd: REPO_ROOT,
    // Without NODE_TEST_CONTEXT the child reports as a run of its own, not as a subtest of ours.
    env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([k]) => k !== 'NODE_TEST_CONTEXT')),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    return { code: await within(SUITES_MS, `node --test ${files.join(' ')}`, exit), output };
  } catch (error) {
    await stopChild(child);
    throw new Error(`${(error as Error).message}:\n${output.slice(-6000)}`, { cause: error });
  }
}

describe('the e2e suites against an existing cluster', () => {
  let dir: string;
  let harness: ChildProcess;
  let env: Record<string, string>;

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nixery-existing-'));
    const kubeconfig = path.join(dir, 'kubeconfig');
    const auditLog = path.join(dir, 'audit.log');
    harness = spawn(process.execPath, [HARNESS, '--kubeconfig', kubeconfig, '--data-dir', path.join(dir, 'data'), '--audit-log-path', auditLog], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    await waitForOutput(harness, /"ready":true/, 60_000);
    env = { NIXERY_E2E_CLUSTER: 'existing', KUBECONFIG: kubeconfig, NIXERY_E2E_AUDIT_LOG: auditLog };
  });
  after(async () => {
    if (harness) await stopChild(harness);
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('fails loudly without the audit log it needs', async () => {
    const result = await runSuites(['e2e/operator/instance.test.ts'], { ...env, NIXERY_E2E_AUDIT_LOG: '' });
    assert.notEqual(result.code, 0);
    assert.match(result.output, /NIXERY_E2E_CLUSTER=existing needs NIXERY_E2E_AUDIT_LOG/);
  });

  it('refuses to run in a namespace that exists already, and leaves it alone', async () => {
    await kubectlOk(env.KUBECONFIG!, ['create', 'namespace', 'team-a']);
    const result = await runSuites(['e2e/operator/instance.test.ts'], env);
    assert.notEqual(result.code, 0);
    assert.match(result.output, /namespace team-a already exists/);
    assert.equal((await kubectl(env.KUBECONFIG!, ['get', 'namespace', 'team-a'])).code, 0, 'not deleted');
    await kubectlOk(env.KUBECONFIG!, ['delete', 'namespace', 'team-a', '--wait=true', '--timeout=60s']);
  });

  it('runs the NixeryInstance and chart template suites and removes every namespace they made', async () => {
    const result = await runSuites(['e2e/operator/instance.test.ts', 'e2e/chart/template.test.ts'], env);
    assert.equal(result.code, 0, result.output.slice(-6000));
    // Every test of both files ran and passed (none skipped for want of something).
    const count = (what: string) => Number(new RegExp(`\\b${what} (\\d+)\\b`).exec(result.output)?.[1]);
    assert.ok(count('tests') >= 12, `the tests of both files ran: ${count('tests')}`);
    assert.equal(count('pass'), count('tests'));
    assert.equal(count('skipped'), 0);
    const namespaces = JSON.parse(await kubectlOk(env.KUBECONFIG!, ['get', 'namespaces', '-o', 'json'])) as { items: { metadata: { name: string } }[] };
    const left = namespaces.items.map((n) => n.metadata.name).filter((n) => ['team-a', 'watched', 'ignored', 'nixery', 'nixery-e2e-operator'].includes(n));
    assert.deepEqual(left, []);
    assert.equal((await kubectl(env.KUBECONFIG!, ['get', 'crd', 'servicemonitors.monitoring.coreos.com'])).code, 1, 'the stand-in ServiceMonitor CRD is removed again');
  });
});
