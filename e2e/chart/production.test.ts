// The chart's production features, rendered by Helm 4 and Helm 3 without a cluster: the operator's
// PodDisruptionBudget and topology spread, the NetworkPolicies, the registries' PodMonitor, the
// PrometheusRule and the Grafana dashboard; the schema refusing bad values for them; and every
// metric the alerts and the dashboard query checked against the metrics the code registers.
// (template.test.ts has the API server validate these objects: e2e/chart/values/production.yaml.)
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { KubernetesObject, V1Deployment, V1PodDisruptionBudget } from '@kubernetes/client-node';
import { createMetrics } from '../../registry/src/metrics/metrics.ts';
import { FAILURE_OUTCOMES } from '../../registry/src/builder/outcome.ts';
import { createOperatorMetrics } from '../../operator/src/metrics.ts';
import { commonLabels } from '../../operator/src/kube/labels.ts';
import { CHART, HELM_VERSIONS, makeHelm, parseManifests, tempHome, VALUES_DIR, type Helm } from './support.ts';

const home = tempHome('nixery-chart-production-');
after(() => fs.rmSync(home, { recursive: true, force: true }));

const render = async (helm: Helm, args: string[] = []): Promise<KubernetesObject[]> =>
  parseManifests(await helm.ok(['template', 'nixery', CHART, '--namespace', 'nixery', ...args]));
const find = <T extends KubernetesObject>(objects: KubernetesObject[], kind: string, name?: string, namespace?: string): T[] =>
  objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name) && (namespace === undefined || o.metadata?.namespace === namespace)) as T[];
const production = ['-f', path.join(VALUES_DIR, 'production.yaml')];

/** A NetworkPolicy as YAML has it (client-node's type names the ingress peers `_from`). */
interface Selector { matchLabels?: Record<string, string>; matchExpressions?: object[] }
interface Peer { podSelector?: Selector; namespaceSelector?: Selector; ipBlock?: { cidr: string; except?: string[] } }
interface Port { port: number | string; protocol: string }
type V1NetworkPolicy = KubernetesObject & {
  spec: { podSelector: Selector; policyTypes: string[]; ingress?: { from?: Peer[]; ports?: Port[] }[]; egress?: { to?: Peer[]; ports?: Port[] }[] };
};
interface Rule { alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> }
type PrometheusRule = KubernetesObject & { spec: { groups: { name: string; rules: Rule[] }[] } };
type PodMonitor = KubernetesObject & { spec: { selector: { matchLabels: Record<string, string> }; namespaceSelector: Record<string, unknown>; podMetricsEndpoints: { port: string; scheme: string; tlsConfig?: object; relabelings: object[] }[] } };
type ConfigMap = KubernetesObject & { data: Record<string, string> };
const alerts = (rule: PrometheusRule) => rule.spec.groups.flatMap((g) => g.rules);

const OPERATOR_SELECTOR = { 'app.kubernetes.io/name': 'nixery-operator', 'app.kubernetes.io/instance': 'nixery' };
/** What the operator puts on the registry and build pods it creates (operator/src/kube/labels.ts). */
const REGISTRY_POD_LABELS = commonLabels('any-instance', 'registry');
const BUILD_POD_LABELS = commonLabels('any-instance', 'build');
const isSubset = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

for (const version of HELM_VERSIONS) {
  describe(`helm ${version}: production features`, () => {
    const helm = makeHelm(version, home);

    it('adds a PodDisruptionBudget and a topology spread to the operator only with more than one replica', async () => {
      const one = await render(helm);
      assert.deepEqual(find(one, 'PodDisruptionBudget'), []);
      assert.equal(find<V1Deployment>(one, 'Deployment')[0]!.spec!.template.spec!.topologySpreadConstraints, undefined);

      const two = await render(helm, ['--set', 'replicaCount=2']);
      const [pdb] = find<V1PodDisruptionBudget>(two, 'PodDisruptionBudget', 'nixery-operator', 'nixery');
      assert.equal((pdb as KubernetesObject).apiVersion, 'policy/v1');
      assert.deepEqual(pdb!.spec, { minAvailable: 1, selector: { matchLabels: OPERATOR_SELECTOR } });
      const deployment = find<V1Deployment>(two, 'Deployment')[0]!;
      // The budget selects exactly the Deployment's pods.
      assert.deepEqual(pdb!.spec!.selector, deployment.spec!.selector);
      assert.deepEqual(deployment.spec!.template.spec!.topologySpreadConstraints, [
        { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: OPERATOR_SELECTOR } },
      ]);
      assert.ok(isSubset(OPERATOR_SELECTOR, deployment.spec!.template.metadata!.labels!));

      const percent = await render(helm, ['--set', 'replicaCount=3', '--set', 'podDisruptionBudget.maxUnavailable=50%']);
      assert.deepEqual(find<V1PodDisruptionBudget>(percent, 'PodDisruptionBudget')[0]!.spec, { maxUnavailable: '50%', selector: { matchLabels: OPERATOR_SELECTOR } });
      assert.equal(find<V1PodDisruptionBudget>(await render(helm, ['--set', 'replicaCount=3', '--set', 'podDisruptionBudget.minAvailable=2']), 'PodDisruptionBudget')[0]!.spec!.minAvailable, 2);

      const custom = await render(helm, [
        '--set', 'replicaCount=2',
        '--set-json', 'topologySpread.constraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"DoNotSchedule"},{"maxSkew":2,"topologyKey":"kubernetes.io/hostname","whenUnsatisfiable":"ScheduleAnyway","labelSelector":{"matchLabels":{"tier":"ops"}}}]',
      ]);
      assert.deepEqual(find<V1Deployment>(custom, 'Deployment')[0]!.spec!.template.spec!.topologySpreadConstraints, [
        { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: OPERATOR_SELECTOR } },
        { maxSkew: 2, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { tier: 'ops' } } },
      ]);

      const off = await render(helm, ['--set', 'replicaCount=2', '--set', 'podDisruptionBudget.enabled=false', '--set', 'topologySpread.enabled=false']);
      assert.deepEqual(find(off, 'PodDisruptionBudget'), []);
      assert.equal(find<V1Deployment>(off, 'Deployment')[0]!.spec!.template.spec!.topologySpreadConstraints, undefined);
    });

    it('renders no NetworkPolicy, monitor, rule or dashboard unless asked', async () => {
      const kinds = (await render(helm, ['--set', 'instance.enabled=true'])).map((o) => o.kind);
      for (const kind of ['NetworkPolicy', 'PodMonitor', 'PrometheusRule', 'ConfigMap']) assert.ok(!kinds.includes(kind), kind);
    });

    it('renders the NetworkPolicies: the operator, and the registry and build pods of each namespace', async () => {
      const policies = async (args: string[]) => find<V1NetworkPolicy>(await render(helm, ['--set', 'networkPolicy.enabled=true', ...args]), 'NetworkPolicy');
      const where = (list: V1NetworkPolicy[]) => list.map((p) => `${p.metadata!.namespace}/${p.metadata!.name}`).sort();
      // The release namespace by default, watchNamespaces when set, networkPolicy.namespaces first.
      assert.deepEqual(where(await policies([])), ['nixery/nixery-operator', 'nixery/nixery-operator-build', 'nixery/nixery-operator-registry']);
      assert.deepEqual(where(await policies(['--set', 'watchNamespaces={nixery,team-a}'])), [
        'nixery/nixery-operator', 'nixery/nixery-operator-build', 'nixery/nixery-operator-registry', 'team-a/nixery-operator-build', 'team-a/nixery-operator-registry',
      ]);
      assert.deepEqual(where(await policies(['--set', 'networkPolicy.namespaces={team-b}'])), ['nixery/nixery-operator', 'team-b/nixery-operator-build', 'team-b/nixery-operator-registry']);

      const list = await policies([]);
      const byName = (name: string) => list.find((p) => p.metadata!.name === name)!.spec!;
      const operator = byName('nixery-operator');
      assert.deepEqual(operator.podSelector.matchLabels, { ...OPERATOR_SELECTOR, 'app.kubernetes.io/component': 'operator' });
      assert.deepEqual(operator.policyTypes, ['Ingress', 'Egress']);
      assert.deepEqual(operator.ingress, [{ ports: [{ port: 'metrics', protocol: 'TCP' }] }], 'metricsFrom empty: any source, the metrics port only');
      assert.deepEqual(operator.egress![0], {
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
        ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }],
      });
      assert.deepEqual(operator.egress![1], { ports: [{ port: 443, protocol: 'TCP' }, { port: 6443, protocol: 'TCP' }] }, 'no CIDRs: any address on the API ports');
      assert.equal(operator.egress!.length, 3);
      const [registryPeer] = operator.egress![2]!.to!;
      assert.deepEqual(registryPeer!.namespaceSelector, {}, 'every namespace: the operator watches all');
      assert.deepEqual(operator.egress![2]!.ports, [{ port: 'http', protocol: 'TCP' }, { port: 'https', protocol: 'TCP' }]);

      // The selectors match the labels the operator gives its pods, and not each other's pods.
      const registry = byName('nixery-operator-registry');
      const build = byName('nixery-operator-build');
      assert.ok(isSubset(registry.podSelector.matchLabels!, REGISTRY_POD_LABELS));
      assert.ok(!isSubset(registry.podSelector.matchLabels!, BUILD_POD_LABELS));
      assert.ok(isSubset(build.podSelector.matchLabels!, BUILD_POD_LABELS));
      assert.ok(!isSubset(build.podSelector.matchLabels!, REGISTRY_POD_LABELS));
      assert.ok(isSubset(registryPeer!.podSelector!.matchLabels!, REGISTRY_POD_LABELS));

      assert.deepEqual(registry.policyTypes, ['Ingress'], 'its egress is left open');
      assert.equal(registry.ingress!.length, 1);
      const [rule] = registry.ingress!;
      assert.deepEqual(rule!.ports, [{ port: 'http', protocol: 'TCP' }, { port: 'https', protocol: 'TCP' }]);
      assert.deepEqual(rule!.from![0], { namespaceSelector: {} });
      assert.deepEqual(rule!.from![1], {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'nixery' } },
        podSelector: { matchLabels: { ...OPERATOR_SELECTOR, 'app.kubernetes.io/component': 'operator' } },
      });
      assert.ok(isSubset(rule!.from![2]!.podSelector!.matchLabels!, BUILD_POD_LABELS));
      assert.equal(rule!.from![2]!.namespaceSelector, undefined, 'build pods of its own namespace');

      assert.deepEqual(build.policyTypes, ['Ingress', 'Egress']);
      assert.equal(build.ingress, undefined, 'nothing may connect to a build');
      assert.deepEqual(build.egress!.map((e) => e.ports), [
        [{ port: 'http', protocol: 'TCP' }, { port: 'https', protocol: 'TCP' }],
        [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }],
        [{ port: 443, protocol: 'TCP' }, { port: 80, protocol: 'TCP' }],
      ]);
      assert.ok(isSubset(build.egress![0]!.to![0]!.podSelector!.matchLabels!, REGISTRY_POD_LABELS));
      assert.equal(build.egress![0]!.to![0]!.namespaceSelector, undefined, 'the registry of its own namespace');
      assert.deepEqual(build.egress![2]!.to, [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10', '127.0.0.0/8'] } }]);
    });

    it('renders the configured peers, CIDRs and package sources into the NetworkPolicies', async () => {
      const list = find<V1NetworkPolicy>(await render(helm, production), 'NetworkPolicy');
      const spec = (name: string, namespace = 'nixery') => list.find((p) => p.metadata!.name === name && p.metadata!.namespace === namespace)!.spec!;
      const operator = spec('nixery-operator');
      assert.deepEqual(operator.ingress![0]!.from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
      assert.deepEqual(operator.egress![1], { ports: [{ port: 6443, protocol: 'TCP' }], to: [{ ipBlock: { cidr: '10.0.0.1/32' } }, { ipBlock: { cidr: '192.168.10.0/24' } }] });
      assert.deepEqual(operator.egress![2]!.to![0]!.namespaceSelector, { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['nixery', 'team-a'] }] });
      for (const namespace of ['nixery', 'team-a']) {
        assert.deepEqual(spec('nixery-operator-registry', namespace).ingress![0]!.from!.slice(0, 2), [{ namespaceSelector: {} }, { ipBlock: { cidr: '192.168.10.0/24' } }]);
        assert.deepEqual(spec('nixery-operator-build', namespace).egress!.slice(2), [
          { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }], ports: [{ port: 443, protocol: 'TCP' }] },
          { to: [{ ipBlock: { cidr: '203.0.113.7/32' } }] },
        ]);
      }
      // No package source: builds reach the registry and DNS only.
      const closed = find<V1NetworkPolicy>(await render(helm, ['--set', 'networkPolicy.enabled=true', '--set-json', 'networkPolicy.builds.packageSources=[]']), 'NetworkPolicy', 'nixery-operator-build')[0]!;
      assert.equal(closed.spec!.egress!.length, 2);
    });

    it('renders the registries PodMonitor with the job label the alerts select', async () => {
      const [monitor] = find<PodMonitor>(await render(helm, production), 'PodMonitor', 'nixery-operator-registry', 'nixery');
      assert.equal(monitor!.apiVersion, 'monitoring.coreos.com/v1');
      assert.ok(isSubset(monitor!.spec.selector.matchLabels, REGISTRY_POD_LABELS));
      assert.ok(!isSubset(monitor!.spec.selector.matchLabels, BUILD_POD_LABELS));
      assert.deepEqual(monitor!.spec.namespaceSelector, { matchNames: ['nixery', 'team-a'] });
      assert.equal(monitor!.metadata!.labels!.release, 'kube-prometheus-stack');
      assert.deepEqual(monitor!.spec.podMetricsEndpoints.map((e) => [e.port, e.scheme, e.tlsConfig]), [['http', 'http', undefined], ['https', 'https', { insecureSkipVerify: true }]]);
      for (const endpoint of monitor!.spec.podMetricsEndpoints) assert.deepEqual(endpoint.relabelings, [{ action: 'replace', targetLabel: 'job', replacement: 'nixery-registry' }]);
      const [everywhere] = find<PodMonitor>(await render(helm, ['--set', 'metrics.registryPodMonitor.enabled=true', '--set', 'metrics.registryPodMonitor.job=registries']), 'PodMonitor');
      assert.deepEqual(everywhere!.spec.namespaceSelector, { any: true });
      const [rule] = find<PrometheusRule>(await render(helm, ['--set', 'prometheusRule.enabled=true', '--set', 'metrics.registryPodMonitor.job=registries']), 'PrometheusRule');
      assert.equal(alerts(rule!).find((a) => a.alert === 'NixeryRegistryDown')!.expr, 'up{job="registries"} == 0');
    });

    it('renders the PrometheusRule: the alerts, their job selectors, the kube-state-metrics group only when asked', async () => {
      const [rule] = find<PrometheusRule>(await render(helm, ['--set', 'prometheusRule.enabled=true']), 'PrometheusRule', 'nixery-operator', 'nixery');
      assert.equal(rule!.apiVersion, 'monitoring.coreos.com/v1');
      assert.deepEqual(rule!.spec.groups.map((g) => g.name), ['nixery']);
      assert.deepEqual(alerts(rule!).map((a) => a.alert), ['NixeryOperatorDown', 'NixeryOperatorReconcileErrors', 'NixeryRegistryDown', 'NixeryBuildsFailing', 'NixeryFreeSpaceLow', 'NixeryGarbageCollectionFailing']);
      const expr = (name: string, r = rule!) => alerts(r).find((a) => a.alert === name)!.expr;
      // The ServiceMonitor's job is the metrics Service's name.
      assert.equal(expr('NixeryOperatorDown'), 'absent(up{job="nixery-operator-metrics", namespace="nixery"} == 1)');
      assert.match(expr('NixeryOperatorReconcileErrors'), /nixery_operator_reconciles_total\{job="nixery-operator-metrics", namespace="nixery", result="error"\}/);
      for (const a of alerts(rule!)) {
        assert.match(a.labels.severity!, /^(warning|critical)$/, a.alert);
        assert.ok(a.annotations.summary && a.annotations.description, a.alert);
      }
      // The failure outcomes the build alert counts are outcomes the registry records (builder/outcome.ts).
      const counted = /result=~"([^"]+)"/.exec(expr('NixeryBuildsFailing'))![1]!.split('|');
      for (const outcome of counted) assert.ok((FAILURE_OUTCOMES as readonly string[]).includes(outcome), outcome);
      assert.ok(!counted.includes('not_found') && !counted.includes('usage'), "clients' mistakes are no failures of the registry");
      // Garbage collection: failed and incomplete runs (service/gc.ts), only while no run completed, on the registry's job.
      assert.equal(
        expr('NixeryGarbageCollectionFailing'),
        'sum by (namespace, pod) (increase(nixery_gc_runs_total{job="nixery-registry", result=~"error|incomplete"}[13h])) > 0 unless sum by (namespace, pod) (increase(nixery_gc_runs_total{job="nixery-registry", result="ok"}[13h])) > 0',
      );

      const [full] = find<PrometheusRule>(await render(helm, production), 'PrometheusRule');
      assert.deepEqual(full!.spec.groups.map((g) => g.name), ['nixery', 'nixery-kube-state-metrics']);
      assert.deepEqual(alerts(full!).slice(6).map((a) => a.alert), ['NixImageBuildFailed', 'NixeryRegistryReplicasUnavailable']);
      assert.equal(full!.metadata!.labels!.release, 'kube-prometheus-stack');
      for (const a of alerts(full!)) assert.equal(a.labels.team, 'platform', a.alert);
      // With watchNamespaces the registry series are those namespaces'.
      assert.match(expr('NixeryRegistryDown', full!), /^up\{job="nixery-registry", namespace=~"nixery\|team-a"\} == 0$/);

      const fewer = find<PrometheusRule>(
        await render(helm, ['--set', 'prometheusRule.enabled=true', '--set', 'prometheusRule.disabledAlerts={NixeryFreeSpaceLow,NixeryOperatorDown,NixeryGarbageCollectionFailing}', '--set', 'prometheusRule.operatorJob=my-operator']),
        'PrometheusRule',
      )[0]!;
      assert.deepEqual(alerts(fewer).map((a) => a.alert), ['NixeryOperatorReconcileErrors', 'NixeryRegistryDown', 'NixeryBuildsFailing']);
      assert.match(expr('NixeryOperatorReconcileErrors', fewer), /\{job="my-operator", namespace="nixery"/);
    });

    it('renders the Grafana dashboard ConfigMap from dashboards/nixery.json with the sidecar label', async () => {
      const [dashboard] = find<ConfigMap>(await render(helm, ['--set', 'grafanaDashboard.enabled=true']), 'ConfigMap', 'nixery-operator-dashboard', 'nixery');
      assert.equal(dashboard!.metadata!.labels!.grafana_dashboard, '1');
      assert.equal(dashboard!.data['nixery.json'], fs.readFileSync(path.join(CHART, 'dashboards/nixery.json'), 'utf8').trimEnd());
      assert.equal((JSON.parse(dashboard!.data['nixery.json']!) as { uid: string }).uid, 'nixery-operator');
      const [moved] = find<ConfigMap>(
        await render(helm, ['--set', 'grafanaDashboard.enabled=true', '--set', 'grafanaDashboard.namespace=monitoring', '--set', 'grafanaDashboard.labels.dashboards=nixery']),
        'ConfigMap',
      );
      assert.equal(moved!.metadata!.namespace, 'monitoring');
      assert.equal(moved!.metadata!.labels!.dashboards, 'nixery');
      assert.equal(moved!.metadata!.labels!.grafana_dashboard, '1', "Helm merges maps: the default label stays beside the user's");
      const [unlabelled] = find<ConfigMap>(
        await render(helm, ['--set', 'grafanaDashboard.enabled=true', '--set', 'grafanaDashboard.labels.grafana_dashboard=null', '--set', 'grafanaDashboard.labels.dashboards=nixery']),
        'ConfigMap',
      );
      assert.equal(unlabelled!.metadata!.labels!.grafana_dashboard, undefined, 'null removes it');
      const [annotated] = find<ConfigMap>(await render(helm, production), 'ConfigMap');
      assert.deepEqual(annotated!.metadata!.annotations, { grafana_folder: 'Nixery' });
    });

    it('refuses bad values for the production features with the schema message', async () => {
      const bad: { name: string; values: object; message: RegExp }[] = [
        { name: 'an unknown networkPolicy key', values: { networkPolicy: { enable: true } }, message: version === 3 ? /networkPolicy: Additional property enable is not allowed/ : /at '\/networkPolicy': additional properties 'enable' not allowed/ },
        { name: 'an API server CIDR that is no CIDR', values: { networkPolicy: { apiServer: { cidrs: ['10.0.0.1'] } } }, message: version === 3 ? /networkPolicy\.apiServer\.cidrs\.0: Does not match pattern/ : /at '\/networkPolicy\/apiServer\/cidrs\/0': '10\.0\.0\.1' does not match pattern/ },
        { name: 'a package source port out of range', values: { networkPolicy: { builds: { packageSources: [{ cidr: '0.0.0.0/0', ports: [0] }] } } }, message: version === 3 ? /networkPolicy\.builds\.packageSources\.0\.ports\.0: Must be greater than or equal to 1/ : /at '\/networkPolicy\/builds\/packageSources\/0\/ports\/0': minimum: got 0, want 1/ },
        { name: 'a peer with an unknown field', values: { networkPolicy: { registry: { from: [{ podSelectors: {} }] } } }, message: version === 3 ? /networkPolicy\.registry\.from\.0: Additional property podSelectors is not allowed/ : /at '\/networkPolicy\/registry\/from\/0': additional properties 'podSelectors' not allowed/ },
        { name: 'minAvailable that is no number or percentage', values: { podDisruptionBudget: { minAvailable: 'half' } }, message: /podDisruptionBudget(\.|\/)minAvailable/ },
        { name: 'a spread with an unknown whenUnsatisfiable', values: { topologySpread: { constraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'Sometimes' }] } }, message: version === 3 ? /topologySpread\.constraints\.0\.whenUnsatisfiable must be one of the following: "DoNotSchedule", "ScheduleAnyway"/ : /at '\/topologySpread\/constraints\/0\/whenUnsatisfiable': value must be one of 'DoNotSchedule', 'ScheduleAnyway'/ },
        { name: 'disabling an alert that does not exist', values: { prometheusRule: { disabledAlerts: ['NixeryGCFailing'] } }, message: version === 3 ? /prometheusRule\.disabledAlerts\.0 must be one of the following/ : /at '\/prometheusRule\/disabledAlerts\/0': value must be one of/ },
        { name: 'a dashboard label that is no string', values: { grafanaDashboard: { labels: { grafana_dashboard: 1 } } }, message: version === 3 ? /grafanaDashboard\.labels\.grafana_dashboard: Invalid type\. Expected: string, given: integer/ : /at '\/grafanaDashboard\/labels\/grafana_dashboard': got number, want string/ },
        { name: 'an unknown PodMonitor key', values: { metrics: { registryPodMonitor: { port: 'http' } } }, message: version === 3 ? /metrics\.registryPodMonitor: Additional property port is not allowed/ : /at '\/metrics\/registryPodMonitor': additional properties 'port' not allowed/ },
      ];
      for (const { name, values, message } of bad) {
        const file = path.join(home, `bad-production-${version}.json`);
        fs.writeFileSync(file, JSON.stringify(values));
        const result = await helm(['template', 'nixery', CHART, '--namespace', 'nixery', '-f', file]);
        assert.notEqual(result.code, 0, `${name} was accepted`);
        assert.match(result.stderr, /values don't meet the specifications of the schema/, name);
        assert.match(result.stderr, message, `${name}:\n${result.stderr}`);
      }
    });
  });
}

// ---- Metric names: every series the alerts and the dashboard read is one the code exports. ----

/** Series from outside this repository the chart reads, each with its documented source. */
const EXTERNAL_METRICS = new Map([
  ['up', 'Prometheus, for every scrape target'],
  ['kube_job_failed', 'kube-state-metrics'],
  ['kube_job_labels', 'kube-state-metrics (with --metric-labels-allowlist)'],
  ['kube_deployment_spec_replicas', 'kube-state-metrics'],
  ['kube_deployment_status_replicas_available', 'kube-state-metrics'],
  ['kube_deployment_labels', 'kube-state-metrics (with --metric-labels-allowlist)'],
]);

/** The series names the registry and the operator expose: each registry's metrics, histograms as their three series. */
async function exportedSeries(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const registry of [createMetrics().registry, createOperatorMetrics().registry]) {
    for (const metric of await registry.getMetricsAsJSON()) {
      if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
      else names.add(metric.name);
    }
  }
  return names;
}

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset']);

/** The metric names a PromQL expression selects (no PromQL library offline: enough of its grammar for ours). */
export function metricNames(expr: string): string[] {
  const labelValues = /^label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)$/.exec(expr.trim());
  if (labelValues) return [labelValues[1]!];
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  const names: string[] = [];
  for (const match of stripped.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const word = match[0];
    const after = stripped.slice(match.index + word.length).trimStart();
    if (after.startsWith('(')) continue; // a function or an aggregation
    if (PROMQL_WORDS.has(word) || /^\$/.test(stripped[match.index - 1] ?? '')) continue;
    names.push(word);
  }
  return names;
}

describe('the alerts and the dashboard query only metrics that exist', () => {
  it('the parser finds the metric names of an expression, and only those', () => {
    assert.deepEqual(metricNames('sum by (namespace, pod) (rate(nixery_builds_total{job="x", result=~"a|b"}[15m])) / sum by (namespace, pod) (rate(nixery_builds_total[$__rate_interval])) > 0.25'), ['nixery_builds_total', 'nixery_builds_total']);
    assert.deepEqual(metricNames('kube_job_failed{condition="true"} * on (namespace, job_name) group_left () kube_job_labels{a="b"} > 0'), ['kube_job_failed', 'kube_job_labels']);
    assert.deepEqual(metricNames('histogram_quantile(0.95, sum by (le, controller) (rate(nixery_operator_reconcile_duration_seconds_bucket{namespace=~"$ns"}[5m])))'), ['nixery_operator_reconcile_duration_seconds_bucket']);
    assert.deepEqual(metricNames('absent(up{job="a"} == 1)'), ['up']);
    assert.deepEqual(metricNames('label_values(nixery_http_requests_total, namespace)'), ['nixery_http_requests_total']);
  });

  it('every metric in the PrometheusRule and the dashboard is registered by the code (a renamed metric fails here)', async () => {
    const exported = await exportedSeries();
    // Sanity: the names come from the code, not from this test.
    assert.ok(exported.has('nixery_operator_reconciles_total') && exported.has('nixery_http_request_duration_seconds_bucket') && exported.has('nixery_process_resident_memory_bytes'));
    const known = (name: string) => exported.has(name) || EXTERNAL_METRICS.has(name);
    assert.ok(!known('nixery_gc_failures_total'), 'an invented name is unknown');

    const helm = makeHelm(4, home);
    const [rule] = find<PrometheusRule>(await render(helm, production), 'PrometheusRule');
    const expressions: [where: string, expr: string][] = alerts(rule!).map((a) => [`alert ${a.alert}`, a.expr]);
    interface Panel { title: string; targets?: { expr: string }[]; panels?: Panel[] }
    const dashboard = JSON.parse(fs.readFileSync(path.join(CHART, 'dashboards/nixery.json'), 'utf8')) as {
      panels: Panel[];
      templating: { list: { name: string; type: string; query: string | { query: string } }[] };
    };
    const panels = (list: Panel[]): Panel[] => list.flatMap((p) => [p, ...panels(p.panels ?? [])]);
    for (const panel of panels(dashboard.panels)) for (const target of panel.targets ?? []) expressions.push([`panel ${panel.title}`, target.expr]);
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      expressions.push([`variable ${variable.name}`, typeof variable.query === 'string' ? variable.query : variable.query.query]);
    }
    assert.ok(expressions.length >= 30, `${expressions.length} expressions`);

    const unknown: string[] = [];
    const used = new Set<string>();
    for (const [where, expr] of expressions) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `${where}: no metric in ${expr}`);
      for (const name of names) {
        used.add(name);
        if (!known(name)) unknown.push(`${where}: ${name}`);
      }
    }
    assert.deepEqual(unknown, [], 'metrics that neither the operator nor the registry registers');
    // The dashboard covers the registry's and the operator's own metrics.
    const ours = [...exported].filter((n) => /^nixery_/.test(n) && !/_process_|_nodejs_/.test(n));
    const unread = ours.filter((n) => !used.has(n) && !used.has(n.replace(/_(sum|count)$/, '_bucket')));
    assert.deepEqual(unread, [], 'metrics of the code no panel or alert reads');
  });
});
