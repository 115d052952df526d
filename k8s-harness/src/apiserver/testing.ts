// Helpers for tests that drive the API server with real clients (kubectl, helm, client-node).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { kubectlBinary, run, type RunResult } from '@nixery/test-support';
import { startApiServer } from './index.ts';
import type { ApiServer, ApiServerOptions } from './index.ts';

export interface TestServer {
  server: ApiServer;
  dir: string;
  kubectl(args: string[], input?: string): Promise<RunResult>;
  /** kubectl that must succeed; returns stdout */
  kubectlOk(args: string[], input?: string): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a server in a fresh temporary directory, with kubectl pointed at it (own cache dir). */
export async function startTestServer(options: ApiServerOptions = {}): Promise<TestServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apiserver-test-'));
  const server = await startApiServer({ kubeconfigPath: path.join(dir, 'kubeconfig'), ...options });
  const binary = kubectlBinary();
  const env = { ...process.env, KUBECONFIG: server.kubeconfigPath, HOME: dir };
  const kubectl = (args: string[], input?: string): Promise<RunResult> =>
    run(binary, ['--cache-dir', path.join(dir, 'kube-cache'), ...args], { env, ...(input !== undefined ? { input } : {}) });
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
