// Helpers for tests that drive the API server with real clients (kubectl, helm, client-node).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiServer } from './index.ts';
import type { ApiServer, ApiServerOptions } from './index.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { env: options.env ?? process.env, cwd: options.cwd, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error(`${command} not found`));
        return;
      }
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

/** A tool the tests need; a missing one fails the test with the way to install it. */
export function requireTool(file: string, hint: string): string {
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: ${hint}`);
  return file;
}

export const KUBECTL = '/usr/bin/kubectl';
export const HELM3 = path.join(REPO_ROOT, '.tools/helm3/helm');
export const HELM4 = path.join(REPO_ROOT, '.tools/helm4/helm');
const SETUP_HINT = 'run `bash scripts/setup.sh` (it installs helm 3 and 4 into .tools/)';

export function helm(version: 3 | 4): string {
  return requireTool(version === 3 ? HELM3 : HELM4, SETUP_HINT);
}

export interface TestServer {
  server: ApiServer;
  dir: string;
  kubectl(args: string[], input?: string): Promise<CommandResult>;
  /** kubectl that must succeed; returns stdout */
  kubectlOk(args: string[], input?: string): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a server in a fresh temporary directory, with kubectl pointed at it (own cache dir). */
export async function startTestServer(options: ApiServerOptions = {}): Promise<TestServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apiserver-test-'));
  const server = await startApiServer({ kubeconfigPath: path.join(dir, 'kubeconfig'), ...options });
  requireTool(KUBECTL, 'kubectl comes with the Google Cloud SDK on this machine (/usr/bin/kubectl); install kubectl 1.27–1.33');
  const env = { ...process.env, KUBECONFIG: server.kubeconfigPath, HOME: dir };
  const kubectl = (args: string[], input?: string): Promise<CommandResult> =>
    run(KUBECTL, ['--cache-dir', path.join(dir, 'kube-cache'), ...args], { env, ...(input !== undefined ? { input } : {}) });
  return {
    server,
    dir,
    kubectl,
    async kubectlOk(args, input) {
      const r = await kubectl(args, input);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
      return r.stdout;
    },
    async stop() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const WIDGET_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd], listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: A Widget is a test resource.
        properties:
          spec:
            type: object
            description: Desired state of the widget.
            required: [size]
            x-kubernetes-validations:
            - rule: "self.replicas <= 1 || has(self.storage)"
              message: more than one replica needs storage
            properties:
              size: {type: string, enum: [small, large], description: How big the widget is.}
              replicas: {type: integer, minimum: 0, maximum: 5, default: 1}
              storage: {type: object, properties: {path: {type: string}}}
          status:
            type: object
            properties:
              replicas: {type: integer}
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status]
                  properties: {type: {type: string}, status: {type: string}}
`;
