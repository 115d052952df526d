// A small Kubernetes API server for tests: HTTPS with a generated CA, the built-in kinds this
// project uses, CustomResourceDefinitions and their custom resources, watches, server-side
// apply, garbage collection. See ../apiserver.md for what it does and does not emulate.
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { Api } from './api.ts';
import { AuditLog } from './audit.ts';
import { DEFAULT_SERVICE_CLUSTER_IP_RANGE, serviceIpPrefix } from './builtins.ts';
import { servingCerts } from './certs.ts';
import { Controllers } from './controllers.ts';
import { createHandler } from './http.ts';
import type { RequestLogEntry } from './http.ts';
import { renderKubeconfig } from './kubeconfig.ts';
import { ResourceRegistry } from './registry.ts';
import { Store } from './store.ts';
import { TokenSigner } from './tokens.ts';

export type { NonResourceVerb, RequestLogEntry, Verb } from './http.ts';
export type { AuditEvent, AuditObjectRef } from './audit.ts';
export type { AuthorizationRequest, Grant, PolicyRule } from './rbac.ts';
export { rbacAllows, ruleAllows, unusedGrants } from './rbac.ts';

export interface ApiServerOptions {
  /** persist objects here; a restart with the same directory keeps them (and the CA) */
  dataDir?: string;
  /** default 0 (any free port) */
  port?: number;
  /** default 127.0.0.1 */
  host?: string;
  /** write a kubeconfig here; default `<dataDir>/kubeconfig` or a temporary file */
  kubeconfigPath?: string;
  /** change events kept for watches to resume from; older resourceVersions get 410 Gone. Default 1000 */
  watchHistorySize?: number;
  /** how often watches with allowWatchBookmarks=true get a BOOKMARK. Default 60000 */
  bookmarkIntervalMs?: number;
  /** watches without timeoutSeconds end after this many seconds (up to twice). Default 1800 */
  minRequestTimeoutSeconds?: number;
  /** a /16 inside 127.0.0.0/8 that Service ClusterIPs come from; clusters running at once need different ones. Default 127.96.0.0/16 */
  serviceClusterIpRange?: string;
  /** append an audit.k8s.io/v1 Event per request to this file (JSON lines, level Metadata), as kube-apiserver's --audit-log-path */
  auditLogPath?: string;
}

export interface ApiServer {
  url: string;
  kubeconfigPath: string;
  caCertPem: string;
  /** ClusterIP of the `default/kubernetes` Service (the first address of the Service range), which pods use as KUBERNETES_SERVICE_HOST */
  kubernetesServiceIP: string;
  stop(): Promise<void>;
  /** every request, in arrival order */
  requestLog: RequestLogEntry[];
}

export async function startApiServer(options: ApiServerOptions = {}): Promise<ApiServer> {
  const host = options.host ?? '127.0.0.1';
  const dataDir = options.dataDir ? path.resolve(options.dataDir) : undefined;
  let tempDir: string | undefined;
  if (dataDir) fs.mkdirSync(dataDir, { recursive: true });
  const kubernetesServiceIP = `${serviceIpPrefix(options.serviceClusterIpRange ?? DEFAULT_SERVICE_CLUSTER_IP_RANGE)}.0.1`;
  const pki = dataDir ? path.join(dataDir, 'pki') : undefined;
  const certs = servingCerts(pki, [kubernetesServiceIP]);
  const signer = TokenSigner.load(pki);
  const store = new Store({ ...(dataDir ? { dataDir: path.join(dataDir, 'store') } : {}), historySize: options.watchHistorySize ?? 1000 });
  const api = new Api(store, new ResourceRegistry(), options.serviceClusterIpRange ? { serviceClusterIpRange: options.serviceClusterIpRange } : {});
  const controllers = new Controllers(api, { caCertPem: certs.caCertPem });
  controllers.bootstrapNamespaces();
  controllers.bootstrapRbac();

  const requestLog: RequestLogEntry[] = [];
  const auditLog = options.auditLogPath ? new AuditLog(options.auditLogPath) : undefined;
  const openWatches = new Set<() => void>();
  let address = '';
  const server = https.createServer(
    { key: certs.keyPem, cert: certs.certPem },
    createHandler({
      api,
      signer,
      requestLog,
      serverAddress: () => address,
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
      minRequestTimeoutSeconds: options.minRequestTimeoutSeconds ?? 1800,
      openWatches,
      ...(auditLog ? { auditLog } : {}),
    }),
  );
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => {
      auditLog?.close();
      reject(error);
    });
    server.listen(options.port ?? 0, host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const url = `https://${address}`;
  // In-cluster clients reach this server through the `kubernetes` Service, whose endpoint is the
  // IPv4 address listened on (127.0.0.1 for a wildcard host).
  controllers.serveAt({ ip: net.isIPv4(host) && host !== '0.0.0.0' ? host : '127.0.0.1', port });

  let kubeconfigPath = options.kubeconfigPath;
  if (!kubeconfigPath) {
    if (dataDir) kubeconfigPath = path.join(dataDir, 'kubeconfig');
    else {
      tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nixery-k8s-'));
      kubeconfigPath = path.join(tempDir, 'kubeconfig');
    }
  }
  fs.mkdirSync(path.dirname(kubeconfigPath), { recursive: true });
  fs.writeFileSync(kubeconfigPath, renderKubeconfig(url, certs.caCertPem), { mode: 0o600 });

  let stopped: Promise<void> | undefined;
  return {
    url,
    kubeconfigPath,
    caCertPem: certs.caCertPem,
    kubernetesServiceIP,
    requestLog,
    stop: () => {
      stopped ??= (async () => {
        controllers.stop();
        for (const end of [...openWatches]) end();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        auditLog?.close();
        if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
