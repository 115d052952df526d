// Shared by the chart suites: where the chart and its values files are, and helm 3 / helm 4 run
// with their own cache and config directories, so nothing of the user's helm set-up leaks in.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import { helm as helmBinary, REPO_ROOT, run, type RunResult } from '@nixery/test-support';

export { REPO_ROOT };
export const CHART = path.join(REPO_ROOT, 'charts/nixery-operator');
export const VALUES_DIR = path.join(REPO_ROOT, 'e2e/chart/values');
export const HELM_VERSIONS = [4, 3] as const;
export type HelmVersion = (typeof HELM_VERSIONS)[number];

/** Every documented values combination (e2e/chart/values/*.yaml), by file name. */
export function valuesFiles(): string[] {
  return fs
    .readdirSync(VALUES_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => path.join(VALUES_DIR, f));
}

export interface Helm {
  (args: string[], options?: { timeoutMs?: number }): Promise<RunResult>;
  /** helm that must succeed; returns stdout. */
  ok(args: string[], options?: { timeoutMs?: number }): Promise<string>;
  version: HelmVersion;
}

export function makeHelm(version: HelmVersion, home: string, kubeconfig?: string): Helm {
  const binary = helmBinary(version);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    HELM_CACHE_HOME: path.join(home, `helm${version}-cache`),
    HELM_CONFIG_HOME: path.join(home, `helm${version}-config`),
    HELM_DATA_HOME: path.join(home, `helm${version}-data`),
    ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
  };
  const helm = ((args: string[], options: { timeoutMs?: number } = {}) =>
    run(binary, [...(kubeconfig ? ['--kubeconfig', kubeconfig] : []), ...args], { env, timeoutMs: options.timeoutMs ?? 120_000 })) as Helm;
  helm.ok = async (args, options) => {
    const result = await helm(args, options);
    if (result.code !== 0) throw new Error(`helm ${version} ${args.join(' ')} failed (${result.code}):\n${result.stderr}${result.stdout}`);
    return result.stdout;
  };
  helm.version = version;
  return helm;
}

export function tempHome(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function parseManifests(text: string): KubernetesObject[] {
  return parseAllDocuments(text)
    .map((doc) => doc.toJS() as KubernetesObject | null)
    .filter((o): o is KubernetesObject => o !== null && typeof o === 'object');
}

export function readYaml<T>(file: string): T {
  const [doc] = parseAllDocuments(fs.readFileSync(file, 'utf8'));
  return doc!.toJS() as T;
}
