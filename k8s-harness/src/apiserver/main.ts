// `node k8s-harness/src/apiserver/main.ts --kubeconfig FILE [--data-dir DIR] [--port N] [--host H] [--audit-log-path FILE]`:
// runs the API server until killed, after printing one JSON line once it is ready.
import { parseArgs } from 'node:util';
import { startApiServer } from './index.ts';

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: main.ts --kubeconfig FILE [--data-dir DIR] [--port N] [--host H] [--audit-log-path FILE]\n`);
  process.exit(64);
}

let values: { kubeconfig?: string; 'data-dir'?: string; port?: string; host?: string; 'audit-log-path'?: string };
try {
  ({ values } = parseArgs({ options: { kubeconfig: { type: 'string' }, 'data-dir': { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, 'audit-log-path': { type: 'string' } } }));
} catch (err) {
  usage((err as Error).message);
}
if (!values.kubeconfig) usage('--kubeconfig is required');
const port = values.port === undefined ? 0 : Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`--port must be a port number, got ${values.port ?? ''}`);

const server = await startApiServer({
  kubeconfigPath: values.kubeconfig,
  port,
  ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
  ...(values.host ? { host: values.host } : {}),
  ...(values['audit-log-path'] ? { auditLogPath: values['audit-log-path'] } : {}),
});
process.stdout.write(`${JSON.stringify({ ready: true, url: server.url, kubeconfig: server.kubeconfigPath })}\n`);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void server.stop().then(() => process.exit(0));
  });
}
