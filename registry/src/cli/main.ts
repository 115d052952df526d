// `nixery serve` runs the registry; `nixery build` builds one image into storage and prints the
// builder's JSON result. Both read Nixery's environment variables. `nixery forward` is the
// node-local forwarder, `nixery node-config` configures a node's container runtime for the registry.
// `nixery gc [--dry-run]` collects the storage's garbage once (service/gc.ts).
import { writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { TokenKeyError } from '../auth/tokens.ts';
import { WatchedFileError } from '../auth/watched-file.ts';
import { classifyFailure, UsageError, type Outcome } from '../builder/outcome.ts';
import { buildPlatforms, ImageIndexes } from '../builder/image-index.ts';
import { renderSummary, summarizeFailure, summarizeIndexResult, summarizeResult } from '../builder/summary.ts';
import { ConfigError, loadConfig } from '../config/config.ts';
import { ARM64, imageFromName, isValidRepositoryName } from '../image/name.ts';
import { InvalidPlatformsError, parsePlatforms, PLATFORMS, type Platform } from '../image/platform.ts';
import { createLogger, type Logger } from '../log/logger.ts';
import { createLeases, createRuntime } from '../runtime.ts';
import { parseHostPort, startForwarder, type HostPort } from '../forward/tcp-forward.ts';
import { NodeConfigUsageError, parseInstance, parseRegistryHost, parseServer } from '../node-config/files.ts';
import { NodeConfigSync, startReadinessServer } from '../node-config/sync.ts';
import type { ImageConfigOverrides } from '../oci/image.ts';
import { imageConfigSchema } from '../oci/config-schema.ts';
import { lowerPoolThreadPriority } from '../pack/pool-priority.ts';
import { LAYER_COMPRESSIONS, type LayerCompression } from '../pack/compress.ts';
import { GarbageCollector, retention } from '../service/gc.ts';
import { acquireGcLease, GC_BUSY_EXIT_CODE, GcLeaseBusyError } from '../service/gc-lease.ts';
import { openStorage } from '../storage/create.ts';
import { parsePushReference, pushImage, readCaBundle, type PushTarget } from '../push/client.ts';
import { pushImageIndex } from '../push/image-index.ts';
import { PushLocations } from '../push/push-locations.ts';

/** Exit codes of `nixery build` (and `serve` at start-up), one per outcome so scripts and the operator can tell them apart. */
const EXIT_CODES: Record<Outcome, number> = {
  success: 0,
  error: 1,
  usage: 64,
  not_found: 2,
  nix_failure: 3,
  timeout: 4,
  storage_failure: 5,
  push_failure: 6,
};

function fail(log: Logger, error: unknown, code: number): never {
  log.error((error as Error).message, { error });
  process.stderr.write(`nixery: ${(error as Error).message}\n`);
  process.exit(code);
}

function configOrExit(): ReturnType<typeof loadConfig> {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`nixery: invalid configuration: ${error.message}\n`);
      process.exit(EXIT_CODES.usage);
    }
    throw error;
  }
}

const INTERRUPTING_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
/** Longer than Nix is given to stop (3 s, then SIGKILL) and its pipes to close (1 s). */
const INTERRUPT_GRACE_MS = 5_000;

/** Nice value of libuv's pool threads in `nixery build`; the lowest priority, measured fastest. */
const POOL_NICE = 19;

const program = new Command()
  .name('nixery')
  .description('A container registry that builds images from Nix package lists on demand')
  .showHelpAfterError();

program
  .command('serve')
  .description('run the registry (configured by PORT, NIXERY_* and STORAGE_PATH environment variables)')
  .option('--host <address>', 'address to listen on (default: all)')
  .action(async (options: { host?: string }) => {
    const config = configOrExit();
    const log = createLogger({ level: config.logLevel, base: { component: 'registry' } });
    let runtime;
    try {
      runtime = await createRuntime(config, log);
    } catch (error) {
      fail(log, error, EXIT_CODES[classifyFailure(error).outcome]);
    }
    let server;
    try {
      // Loaded here: `nixery build` and the other commands never need the HTTP app.
      const { startServer } = await import('../server.ts');
      server = await startServer(runtime, options.host);
    } catch (error) {
      // The authentication files (htpasswd, policy, token key) are read here: a bad one is a configuration error.
      fail(log, error, isAuthFileError(error) ? EXIT_CODES.usage : EXIT_CODES.error);
    }
    const stop = (signal: string) => {
      log.info('shutting down', { signal });
      // Pulled tags (and pull records) not yet written are written now, and again once the last request is answered.
      void runtime.tags.flush();
      void runtime.pulls.flush();
      server.close(() => void Promise.all([runtime.tags.close(), runtime.pulls.close()]).then(() => process.exit(0)));
      server.closeIdleConnections();
      setTimeout(() => process.exit(0), 10_000).unref();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });

program
  .command('forward')
  .description('forward TCP connections, e.g. localhost:<hostPort> on a node to the registry Service')
  .requiredOption('--listen <host:port>', 'address to listen on', parseHostPort)
  .requiredOption('--target <host:port>', 'address to forward to', parseHostPort)
  .action(async (options: { listen: HostPort; target: HostPort }) => {
    const log = createLogger({ base: { component: 'forward' } });
    await startForwarder(options.listen, options.target, log);
    log.info('forwarding', { listen: options.listen, target: options.target });
  });

/** A commander option parser from one of node-config's, its message kept. */
function nodeConfigOption<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (error) {
      if (error instanceof NodeConfigUsageError) throw new InvalidArgumentError(error.message);
      throw error;
    }
  };
}

const seconds = (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
};

program
  .command('node-config')
  .description("configure this node's container runtime (containerd's hosts directory, CRI-O's registries.conf.d) to pull the registry's DNS names from its ClusterIP; keeps the files current and removes its own on SIGTERM")
  .requiredOption('--instance <namespace/name>', 'the NixeryInstance, named in the marker line of every file written', nodeConfigOption(parseInstance))
  .requiredOption('--host <host:port>', 'a name pods pull by (repeatable), e.g. nixery.team-a.svc.cluster.local:5000', (v: string, previous: string[] = []) => [...previous, nodeConfigOption(parseRegistryHost)(v)])
  .requiredOption('--server <url>', 'where the runtime connects instead: http(s)://<ClusterIP>:<port>', nodeConfigOption((v: string) => (parseServer(v), v)))
  .option('--ca-file <path>', 'with an https server: the CA bundle (PEM) to trust, re-read every interval')
  .option('--containerd-dir <dir>', "containerd's hosts directory (its config_path), as mounted here")
  .option('--containerd-host-dir <dir>', 'that directory as the node sees it (default: --containerd-dir)')
  .option('--containerd-config <file>', "containerd's config.toml: not ready unless its config_path covers the hosts directory (a missing file: no check)")
  .option('--crio-dir <dir>', "CRI-O's registries.conf.d drop-in directory, as mounted here")
  .option('--crio-certs-dir <dir>', '/etc/containers/certs.d as mounted here: the CA for CRI-O, with an https server')
  .option('--ready-listen <host:port>', 'serve GET /readyz (200 configured, 503 not) and /healthz there', parseHostPort)
  .option('--interval <seconds>', 'how often to look again', seconds, 10)
  .action(async (options: { instance: string; host: string[]; server: string; caFile?: string; containerdDir?: string; containerdHostDir?: string; containerdConfig?: string; crioDir?: string; crioCertsDir?: string; readyListen?: HostPort; interval: number }) => {
    const log = createLogger({ base: { component: 'node-config' } });
    if (!options.containerdDir && !options.crioDir) program.error('error: node-config needs --containerd-dir or --crio-dir');
    if (parseServer(options.server).scheme === 'https' && !options.caFile) program.error('error: an https --server needs --ca-file');
    const sync = new NodeConfigSync(
      {
        instance: options.instance,
        hosts: options.host,
        server: options.server,
        ...(options.caFile ? { caFile: options.caFile } : {}),
        ...(options.containerdDir ? { containerdDir: options.containerdDir } : {}),
        ...(options.containerdHostDir ? { containerdHostDir: options.containerdHostDir } : {}),
        ...(options.containerdConfig ? { containerdConfig: options.containerdConfig } : {}),
        ...(options.crioDir ? { crioDir: options.crioDir } : {}),
        ...(options.crioCertsDir ? { crioCertsDir: options.crioCertsDir } : {}),
      },
      log,
    );
    let stopping = false;
    let pass: Promise<unknown> = sync.sync();
    await pass;
    const server = options.readyListen ? await startReadinessServer(sync, options.readyListen.host, options.readyListen.port) : undefined;
    log.info('node-config running', { instance: options.instance, hosts: options.host, server: options.server, ready: sync.report.ready, readyListen: options.readyListen });
    const timer = setInterval(() => {
      if (!stopping) pass = pass.then(() => sync.sync()).then(() => undefined, (error: unknown) => log.error('node-config pass failed', { error }));
    }, options.interval * 1000);
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      clearInterval(timer);
      log.info('removing the files this process wrote', { signal });
      await pass.catch(() => {});
      await sync.removeAll();
      server?.close();
      process.exit(0);
    };
    for (const signal of INTERRUPTING_SIGNALS) process.once(signal, () => void stop(signal));
  });

const packageList = (value: string): string[] => {
  const packages = value.split(',').map((p) => p.trim()).filter(Boolean);
  if (packages.length === 0) throw new InvalidArgumentError('expected a comma-separated list of packages');
  return packages;
};

const repositoryList = (value: string): string[] => {
  const names = value.split(',').map((n) => n.trim()).filter(Boolean);
  if (names.length === 0) throw new InvalidArgumentError('expected a comma-separated list of repositories');
  const invalid = names.find((n) => !isValidRepositoryName(n));
  if (invalid !== undefined) throw new InvalidArgumentError(`invalid repository name ${JSON.stringify(invalid)}`);
  return names;
};

program
  .command('gc')
  .description('delete unreferenced blobs and cache entries from the configured storage (as serve has it) and print what was deleted as JSON')
  .option('--dry-run', 'only print what would be deleted: nothing is written, not even the garbage collection state')
  .action(async (options: { dryRun?: boolean }) => {
    const config = configOrExit();
    const log = createLogger({ level: config.logLevel, base: { component: 'gc' } });
    try {
      // A dry run sweeps no staging leftovers either (opening the storage otherwise does).
      const storage = await openStorage(config.storage, log, { stagingTtlMs: options.dryRun ? Number.POSITIVE_INFINITY : config.purge.stagingTtlSeconds * 1000 });
      const collector = new GarbageCollector({ storage, graceMs: config.gc.graceSeconds * 1000, ...retention(config), ...(config.storageQuotaBytes !== undefined ? { quotaBytes: config.storageQuotaBytes } : {}), log });
      // One run at a time across replicas; a dry run deletes nothing and needs no lease. Waiting
      // a lease duration and a bit covers a run of a replica that died (its lease expires).
      const leases = createLeases(storage, config, log);
      const lease = options.dryRun ? undefined : await acquireGcLease(leases, { waitMs: (config.leaseDurationSeconds + 5) * 1000 });
      try {
        const report = await collector.collect({ dryRun: options.dryRun ?? false, ...(lease ? { signal: lease.signal } : {}) });
        process.stdout.write(JSON.stringify(report) + '\n');
        if (report.result !== 'ok') process.exitCode = EXIT_CODES.storage_failure;
      } finally {
        await lease?.release();
      }
    } catch (error) {
      process.stdout.write(JSON.stringify({ error: { message: (error as Error).message } }) + '\n');
      fail(log, error, error instanceof GcLeaseBusyError ? GC_BUSY_EXIT_CODE : EXIT_CODES[classifyFailure(error).outcome]);
    }
  });

program
  .command('build')
  .description('build one image into the configured storage and print the result as JSON')
  .requiredOption('-p, --packages <list>', 'comma-separated packages, with Nixery meta-packages first (e.g. shell,git,htop)', packageList)
  .option('-t, --tag <tag>', 'image tag; with a git package source, the branch, tag or commit to build from', 'latest')
  .option('--config-json <json>', 'image config to declare: {"entrypoint","cmd","env":[{name,value}],"workingDir","user","exposedPorts","labels"}', parseImageConfig)
  .option('--platforms <list>', 'comma-separated platforms to build for, of linux/amd64 and linux/arm64; several: an image each and an OCI image index of them, pushed under the tag after the images (default: this machine\'s architecture; the arm64 meta-package: linux/arm64)')
  .option('--layer-compression <gzip|zstd>', 'how layers are compressed (default: NIXERY_LAYER_COMPRESSION, else gzip); a zstd image is an OCI manifest, pushed as such')
  .option('--push <registry/name:tag>', 'push the image there afterwards, with the push token (NIXERY_PUSH_TOKEN or _FILE) or --push-identity-token-file')
  .option('--push-scheme <scheme>', 'http (in-cluster registries) or https', 'http')
  .option('--push-ca-file <path>', "with --push-scheme https: the CA certificates (PEM) to trust instead of the system's")
  .option('--push-identity-token-file <path>', 'push with this Kubernetes ServiceAccount token (read anew for every token exchange) instead of the push token')
  .option('--push-mount-from <list>', 'comma-separated repositories of the target registry to mount missing blobs from instead of uploading them (tried after the repositories earlier pushes from this storage put them in)', repositoryList)
  .option('--result-file <path>', 'also write a summary of at most 4096 bytes there (a Kubernetes termination message)')
  .action(async (options: { packages: string[]; tag: string; configJson?: ImageConfigOverrides; platforms?: string; layerCompression?: string; push?: string; pushScheme: string; pushCaFile?: string; pushIdentityTokenFile?: string; pushMountFrom?: string[]; resultFile?: string }) => {
    // Every outcome is one JSON document on stdout: the result, or {"error": ...}. The operator
    // reads it from a build Job's termination message.
    let log = createLogger({ base: { component: 'builder' } });
    let reported = false;
    const report = async (error: unknown, code?: number): Promise<never> => {
      // Once: an interruption and the failure it causes must not both print a document.
      if (reported) return new Promise<never>(() => {});
      reported = true;
      const failure = summarizeFailure(classifyFailure(error));
      process.stdout.write(JSON.stringify({ error: failure }) + '\n');
      if (options.resultFile) await writeFile(options.resultFile, renderSummary({ error: failure })).catch(() => {});
      fail(log, error, code ?? EXIT_CODES[failure.outcome]);
    };
    // SIGTERM (a Job being stopped) or Ctrl-C: Nix runs in a process group of its own, out of
    // reach of the terminal and of a signal to this process, so it is stopped through the builder.
    // Packing does not watch the signal; the process does not wait for it beyond Nix's grace.
    const interruption = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      if (interruption.signal.aborted) return;
      const error = new BuildInterruptedError(signal);
      interruption.abort(error);
      setTimeout(() => void report(error, error.exitCode), INTERRUPT_GRACE_MS);
    };
    // `on`, not `once`: a second signal (Ctrl-C pressed twice) must not kill it before Nix stopped.
    for (const signal of INTERRUPTING_SIGNALS) process.on(signal, onSignal);
    try {
      const config = loadConfig();
      if (options.layerCompression !== undefined) config.layerCompression = layerCompression(options.layerCompression);
      log = createLogger({ level: config.logLevel, base: { component: 'builder' } });
      const image = imageFromName(options.packages.join('/'), options.tag);
      const platforms = options.platforms === undefined ? undefined : platformList(options.platforms);
      if (platforms && image.arch.system === ARM64.system) throw new UsageError('the arm64 meta-package and --platforms exclude each other: use --platforms linux/arm64');
      const target = options.push ? pushTarget(options.push, options.pushScheme, { token: config.pushToken, identityTokenFile: options.pushIdentityTokenFile }) : undefined;
      if (target && options.pushCaFile !== undefined) target.ca = await pushCa(options.pushCaFile, target.scheme);
      else if (options.pushCaFile !== undefined) throw new UsageError('--push-ca-file is for --push');
      if (!target && options.pushMountFrom !== undefined) throw new UsageError('--push-mount-from is for --push');
      const runtime = await createRuntime(config, log, { defaultMetrics: false, signal: interruption.signal });
      await yieldPoolToEventLoop(log);
      const buildOptions = options.configJson ? { config: options.configJson } : {};
      const pushOptions = { locations: new PushLocations(runtime.storage), mountFrom: options.pushMountFrom ?? [] };
      if (platforms && platforms.length > 1) {
        // Each platform's image, then their index; pushed in that order, the index under the tag.
        const images = await buildPlatforms(runtime.builder, image, platforms, buildOptions);
        const built = await new ImageIndexes(runtime.storage).store(image.name, image.tag, images);
        interruption.signal.throwIfAborted();
        const pushed = target ? await pushImageIndex(runtime.storage, built, target, log, pushOptions) : undefined;
        process.stdout.write(JSON.stringify(pushed ? { ...built, pushed } : built) + '\n');
        if (options.resultFile) await writeFile(options.resultFile, renderSummary(summarizeIndexResult(built, pushed?.reference)));
        return;
      }
      // Without --platforms, this machine's architecture (a build Job's: its node's), unless the name says arm64.
      const platform = platforms?.[0] ?? (image.arch.system === ARM64.system ? undefined : hostPlatform());
      const result = await runtime.builder.build(platform ? { ...image, arch: PLATFORMS[platform] } : image, buildOptions);
      interruption.signal.throwIfAborted();
      const pushed = target ? await pushImage(runtime.storage, result, target, log, pushOptions) : undefined;
      process.stdout.write(JSON.stringify(pushed ? { ...result, pushed } : result) + '\n');
      if (options.resultFile) await writeFile(options.resultFile, renderSummary(summarizeResult(result, pushed?.reference)));
    } catch (error) {
      const reason: unknown = interruption.signal.reason;
      if (reason instanceof BuildInterruptedError) await report(reason, reason.exitCode);
      await report(error);
    }
  });

/** The platform of this machine: what `nixery build` builds for unless told otherwise. */
function hostPlatform(): Platform {
  return process.arch === 'arm64' ? 'linux/arm64' : 'linux/amd64';
}

/** --layer-compression, refused as a usage error as --platforms is. */
function layerCompression(value: string): LayerCompression {
  if (!(LAYER_COMPRESSIONS as readonly string[]).includes(value)) throw new UsageError(`--layer-compression: expected ${LAYER_COMPRESSIONS.join(' or ')}, got ${JSON.stringify(value)}`);
  return value as LayerCompression;
}

/** --platforms, refused as a usage error (a JSON document and exit 64, as a bad package list). */
function platformList(value: string): Platform[] {
  try {
    return parsePlatforms(value);
  } catch (error) {
    if (error instanceof InvalidPlatformsError) throw new UsageError(`--platforms: ${error.message}`);
    throw error;
  }
}

function isAuthFileError(error: unknown): boolean {
  return error instanceof WatchedFileError || error instanceof TokenKeyError;
}

/** Stops the build: Nix gets SIGTERM, then SIGKILL after its grace (nix/run.ts). */
class BuildInterruptedError extends Error {
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
    this.name = 'BuildInterruptedError';
    this.signal = signal;
  }

  /** The shell's status for a process ended by the signal. */
  get exitCode(): number {
    return 128 + (constants.signals[this.signal] ?? 0);
  }
}

/** Packing is faster with the pool threads below the event loop (pack/pool-priority.ts); only speed depends on it. */
async function yieldPoolToEventLoop(log: Logger): Promise<void> {
  try {
    const { threads } = await lowerPoolThreadPriority(POOL_NICE);
    log.debug('pool threads lowered in priority', { nice: POOL_NICE, threads: threads.length });
  } catch (error) {
    log.warn(`packing may be slower: ${(error as Error).message}`, { error });
  }
}

/** An identity token file, when given, is used instead of the push token. */
function pushTarget(reference: string, scheme: string, credentials: { token: string | undefined; identityTokenFile: string | undefined }): PushTarget {
  if (scheme !== 'http' && scheme !== 'https') throw new UsageError(`--push-scheme must be http or https, got ${scheme}`);
  const { token, identityTokenFile } = credentials;
  if (!token && !identityTokenFile) throw new UsageError('--push needs --push-identity-token-file, or the push token in NIXERY_PUSH_TOKEN or NIXERY_PUSH_TOKEN_FILE');
  try {
    return { ...parsePushReference(reference), scheme, ...(identityTokenFile ? { identityTokenFile } : { token: token! }) };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The CA bundle to trust for an https push, checked before the build starts. */
async function pushCa(file: string, scheme: PushTarget['scheme']): Promise<string> {
  if (scheme !== 'https') throw new UsageError('--push-ca-file needs --push-scheme https');
  try {
    return await readCaBundle(file);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function parseImageConfig(value: string): ImageConfigOverrides {
  try {
    return imageConfigSchema.parse(JSON.parse(value));
  } catch (error) {
    throw new InvalidArgumentError(`expected the image config as JSON: ${(error as Error).message}`);
  }
}

await program.parseAsync(process.argv);
