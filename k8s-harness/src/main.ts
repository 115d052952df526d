// `nixery-k8s-harness --kubeconfig FILE [--data-dir DIR] [--port N] [--audit-log-path FILE] [--certs-dir DIR] [--[no-]strict-node-pulls]`: runs the
// test cluster until killed, after printing one JSON line when it is ready.
import { Command, InvalidArgumentError } from 'commander';
import { startCluster } from './cluster.ts';

const program = new Command()
  .name('nixery-k8s-harness')
  .description('a small Kubernetes (API server and a local node) for testing the operator, its CRDs and chart')
  .requiredOption('--kubeconfig <file>', 'write the kubeconfig for the cluster here')
  .option('--data-dir <dir>', 'keep objects, pods and volumes here (a restart with the same directory keeps the objects)')
  .option('--port <port>', 'API server port (default: any free port)', (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port');
    return n;
  })
  .option('--audit-log-path <file>', "append the API server's audit events here (audit.k8s.io/v1 Event JSON lines, level Metadata), as kube-apiserver's flag")
  .option('--certs-dir <dir>', "the node's registry hosts directory, as containerd's config_path: <dir>/<host:port>/hosts.toml or ca.crt, read at each pull")
  .option('--strict-node-pulls', 'pull as a containerd node: registry hosts resolved only by this machine (no Service names: those need a hosts.toml in --certs-dir), plain HTTP only for localhost or http:// endpoints of hosts.toml (the default)')
  .option('--no-strict-node-pulls', 'pull leniently: Service names resolve and plain HTTP is probed for any host (no real node does)')
  .action(async (options: { kubeconfig: string; dataDir?: string; port?: number; auditLogPath?: string; certsDir?: string; strictNodePulls?: boolean }) => {
    const cluster = await startCluster({
      kubeconfigPath: options.kubeconfig,
      ...(options.dataDir ? { dataDir: options.dataDir } : {}),
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.auditLogPath ? { auditLogPath: options.auditLogPath } : {}),
      ...(options.certsDir ? { certsDir: options.certsDir } : {}),
      ...(options.strictNodePulls !== undefined ? { strictNodePulls: options.strictNodePulls } : {}),
      log: (line) => process.stderr.write(JSON.stringify(line) + '\n'),
    });
    const stop = async () => {
      await cluster.stop();
      process.exit(0);
    };
    process.once('SIGTERM', () => void stop());
    process.once('SIGINT', () => void stop());
    process.stdout.write(JSON.stringify({ ready: true, url: cluster.apiServer.url, kubeconfig: cluster.kubeconfigPath, dataDir: cluster.dataDir }) + '\n');
  });

await program.parseAsync(process.argv);
