// `nixery-operator`: reconciles NixeryInstance resources. In a pod it uses the pod's service
// account; outside one, KUBECONFIG.
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, createLogger, loadLogLevel, type Level } from '@nixery/registry/operator-api';
import { ALLOW_NODE_CONFIG_FLAG, ALLOW_NODE_LOCAL_FLAG, ALLOWED_IMAGES_FLAG, DEFAULT_REGISTRY_IMAGE_PATTERNS, parseImagePatterns } from './instance/gates.ts';
import { loadKubeConfig, operatorNamespace } from './kube/client.ts';
import { Manager } from './manager.ts';

const int = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
};

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const namespaceName = (value: string): string => {
  if (!NAMESPACE.test(value) || value.length > 63) throw new InvalidArgumentError('expected a namespace name');
  return value;
};

const program = new Command()
  .name('nixery-operator')
  .description('Kubernetes operator for NixeryInstance and NixImage')
  .option('--health-port <port>', 'port of /healthz, /readyz and /metrics', int, 8081)
  .option('--health-host <address>', 'address of the health server', '0.0.0.0')
  .option('--no-leader-elect', 'run without a leader lease (only one replica!)')
  .option('--lease-namespace <namespace>', 'namespace of the leader Lease (default: the pod namespace)')
  .option('--resync-seconds <n>', 'look at every resource this often even without events', int, 300)
  .option('--workers <n>', 'concurrent reconciles per controller', int, 2)
  .option('--namespaces <list>', 'watch only these comma-separated namespaces (default: all)', (v: string) => {
    const list = v.split(',').map((n) => n.trim()).filter(Boolean);
    if (list.length === 0 || list.some((n) => !NAMESPACE.test(n))) throw new InvalidArgumentError('expected namespace names');
    return list;
  })
  .option('--node-config-namespace <namespace>', "where spec.nodeConfig's DaemonSets run, a namespace allowing privileged pods (default: the operator's own namespace)", namespaceName)
  .option(ALLOW_NODE_LOCAL_FLAG, "let NixeryInstances have spec.nodeLocal: a hostNetwork DaemonSet on every node, with the instance's image")
  .option(ALLOW_NODE_CONFIG_FLAG, "let NixeryInstances have spec.nodeConfig: a root DaemonSet on every node, with the instance's image, writing the container runtime's registry configuration (hostPath)")
  .option(
    `${ALLOWED_IMAGES_FLAG} <patterns>`,
    `the images spec.image may name, comma-separated patterns of full references (* any characters but /, ** any) (default: ${DEFAULT_REGISTRY_IMAGE_PATTERNS.join(',')})`,
    (v: string) => {
      try {
        return parseImagePatterns(v);
      } catch (error) {
        throw new InvalidArgumentError((error as Error).message);
      }
    },
  )
  .action(async (options: { healthPort: number; healthHost: string; leaderElect: boolean; leaseNamespace?: string; resyncSeconds: number; workers: number; namespaces?: string[]; nodeConfigNamespace?: string; allowNodeLocal?: boolean; allowNodeConfig?: boolean; allowedRegistryImages?: string[] }) => {
    const log = createLogger({ level: logLevelOrExit(), base: { component: 'operator' } });
    const manager = new Manager({
      kc: loadKubeConfig(),
      log,
      healthPort: options.healthPort,
      healthHost: options.healthHost,
      leaderElection: { enabled: options.leaderElect, namespace: options.leaseNamespace ?? operatorNamespace() },
      resyncSeconds: Math.max(1, options.resyncSeconds),
      workers: Math.max(1, options.workers),
      ...(options.namespaces ? { namespaces: options.namespaces } : {}),
      nodeConfigNamespace: options.nodeConfigNamespace ?? operatorNamespace(),
      gates: { allowNodeLocal: options.allowNodeLocal === true, allowNodeConfig: options.allowNodeConfig === true, allowedRegistryImages: options.allowedRegistryImages ?? DEFAULT_REGISTRY_IMAGE_PATTERNS },
    });
    log.info('privilege gates', { allowNodeLocal: options.allowNodeLocal === true, allowNodeConfig: options.allowNodeConfig === true, nodeConfigNamespace: options.nodeConfigNamespace ?? operatorNamespace(), allowedRegistryImages: options.allowedRegistryImages ?? DEFAULT_REGISTRY_IMAGE_PATTERNS });
    const shutdown = async (signal: string) => {
      log.info('shutting down', { signal });
      await manager.stop().catch((error: unknown) => log.error('shutdown failed', { error }));
      process.exit(0);
    };
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
    process.once('SIGINT', () => void shutdown('SIGINT'));
    await manager.start();
  });

/** A bad variable ends start-up as a bad option does: one line on stderr, exit status 1. */
function logLevelOrExit(): Level {
  try {
    return loadLogLevel(process.env);
  } catch (error) {
    if (error instanceof ConfigError) program.error(`error: invalid configuration: ${error.message}`);
    throw error;
  }
}

await program.parseAsync(process.argv);
