// helm 3 and helm 4 install, upgrade and uninstall a chart (a ConfigMap and a Deployment)
// against the API server: discovery, OpenAPI, release Secrets (sent as protobuf), client-side
// three-way patches (helm 3) and server-side apply (helm 4).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { helm, run } from '@nixery/test-support';
import { startTestServer } from './testing.ts';
import type { TestServer } from './testing.ts';

function writeChart(dir: string): string {
  const chart = path.join(dir, 'tiny');
  fs.mkdirSync(path.join(chart, 'templates'), { recursive: true });
  fs.writeFileSync(path.join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: tiny\nversion: 0.1.0\n');
  fs.writeFileSync(path.join(chart, 'values.yaml'), 'greeting: hello\nreplicas: 1\n');
  fs.writeFileSync(path.join(chart, 'templates', 'configmap.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  greeting: {{ .Values.greeting | quote }}\n');
  fs.writeFileSync(
    path.join(chart, 'templates', 'deployment.yaml'),
    `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
`,
  );
  return chart;
}

for (const version of [3, 4] as const) {
  describe(`helm ${version}`, () => {
    let t: TestServer;
    let chart: string;
    before(async () => {
      t = await startTestServer();
      chart = writeChart(t.dir);
    });
    after(async () => {
      await t.stop();
    });

    const helmRun = async (args: string[]): Promise<string> => {
      const env = { ...process.env, KUBECONFIG: t.server.kubeconfigPath, HOME: t.dir, HELM_CACHE_HOME: path.join(t.dir, 'helm-cache'), HELM_CONFIG_HOME: path.join(t.dir, 'helm-config'), HELM_DATA_HOME: path.join(t.dir, 'helm-data') };
      const r = await run(helm(version), args, { env });
      assert.equal(r.code, 0, `helm ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };

    it('installs, upgrades and uninstalls a release', async () => {
      assert.match(await helmRun(['install', 'demo', chart]), /STATUS: deployed/);
      assert.equal(await t.kubectlOk(['get', 'cm', 'demo-settings', '-o', 'jsonpath={.data.greeting}']), 'hello');
      assert.match(await t.kubectlOk(['get', 'secrets', '-l', 'owner=helm,name=demo', '-o', 'name']), /secret\/sh.helm.release.v1.demo.v1/);

      assert.match(await helmRun(['upgrade', 'demo', chart, '--set', 'greeting=bye', '--set', 'replicas=3']), /REVISION: 2/);
      assert.equal(await t.kubectlOk(['get', 'cm', 'demo-settings', '-o', 'jsonpath={.data.greeting}']), 'bye');
      assert.equal(await t.kubectlOk(['get', 'deploy', 'demo-web', '-o', 'jsonpath={.spec.replicas}']), '3');
      assert.match(await helmRun(['list']), /demo\s+default\s+2\s+.*deployed/);
      assert.match(await helmRun(['history', 'demo']), /superseded/);

      await helmRun(['uninstall', 'demo']);
      assert.match((await t.kubectl(['get', 'cm', 'demo-settings'])).stderr, /not found/);
      assert.match((await t.kubectl(['get', 'deploy', 'demo-web'])).stderr, /not found/);
      assert.equal(await t.kubectlOk(['get', 'secrets', '-l', 'owner=helm', '-o', 'name']), '');
    });
  });
}
