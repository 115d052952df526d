// One container of a pod: its image resolved and pulled, its environment, identity and mounts, its
// process launched, probed, restarted by the pod's restartPolicy with back-off, and stopped.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { V1Container, V1ContainerState, V1Pod } from '@kubernetes/client-node';
import { containerArgv, type ImageProcess } from './command.ts';
import { referencedSources, resolveEnv, serviceLinkEnv } from './env.ts';
import { podHostname } from './hosts.ts';
import { defaultPullPolicy, resolveImage } from './images.ts';
import { effectiveSecurity, resolveIdentity, type Identity } from './identity.ts';
import { errorMessage } from './kube.ts';
import { findExecutable, launch, resolveInRoot, resolveMountTarget, type BindMount, type ExecContext, type LaunchSpec, type RunningProcess } from './launcher.ts';
import { criWriter, logTail } from './logs.ts';
import { backoffDelay } from './owners.ts';
import type { ContainerRecord, PodRecord } from './pod-status.ts';
import { ProbeWorker } from './probes.ts';
import { PullError, type PulledImage } from './puller.ts';
import { credentialsFor, keyringFromSecrets, type PullSecret, type RegistryCredential } from './pull-secrets.ts';
import { containerMounts, type PreparedVolume } from './volumes.ts';
import { at, GRACE_CAP_MS, RESTART_BACKOFF_BASE_MS, RESTART_BACKOFF_CAP_MS, sleep, type PodWorkerDeps } from './pod-shared.ts';

/** A file of an image root (symlinks resolved inside it), or undefined when it has none. */
async function readInRoot(root: string, file: string): Promise<string | undefined> {
  const resolved = await resolveInRoot(root, file);
  if (resolved === undefined) return undefined;
  try {
    return await fsp.readFile(path.join(root, resolved), 'utf8');
  } catch {
    return undefined;
  }
}

/** What a container runner needs of its pod (pod-worker.ts's PodWorker is one). */
export interface ContainerPod {
  readonly pod: V1Pod;
  readonly dir: string;
  readonly record: PodRecord;
  readonly deps: PodWorkerDeps;
  readonly namespace: string;
  readonly signal: AbortSignal;
  readonly ref: V1Pod;
  readonly hostsPath: string;
  readonly hostnamePath: string;
  readonly volumes: ReadonlyMap<string, PreparedVolume>;
  report(): void;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_TERMINATION_MESSAGE = 4096;

type Image = (ImageProcess & { env: Record<string, string>; workingDir?: string; imageID: string; rootfs?: string; user?: string });

type Outcome = { kind: 'exited'; exitCode: number } | { kind: 'waiting'; pull: boolean };

/** One container of a pod: its instances one after another, as the restart policy asks. */
export class ContainerRunner {
  readonly pod: ContainerPod;
  readonly spec: V1Container;
  readonly kind: 'init' | 'regular';
  readonly record: ContainerRecord;
  #process: RunningProcess | undefined;
  #probes: ProbeWorker[] = [];
  #finished = new Set<number>();
  #stopping: Promise<void> | undefined;

  constructor(pod: ContainerPod, spec: V1Container, kind: 'init' | 'regular', record: ContainerRecord) {
    this.pod = pod;
    this.spec = spec;
    this.kind = kind;
    this.record = record;
  }

  get fieldPath(): string {
    const list = this.kind === 'init' ? 'initContainers' : 'containers';
    return `spec.${list}{${this.spec.name}}`;
  }

  instanceDir(instance: number): string {
    return path.join(this.pod.dir, 'containers', this.spec.name, String(instance));
  }
  logPath(instance: number): string {
    return path.join(this.pod.dir, 'logs', this.spec.name, `${instance}.log`);
  }
  finishedInstance(instance: number): boolean {
    return this.#finished.has(instance);
  }

  #event(type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.pod.deps.events.emit(this.pod.ref, type, reason, message, this.fieldPath);
  }

  #setState(state: V1ContainerState): void {
    this.record.state = state;
    this.pod.report();
  }

  /**
   * Runs instances until one ends for good. Returns whether the last one exited 0 (for init
   * containers: whether the pod may go on).
   */
  async loop(restartPolicy: string): Promise<boolean> {
    let crashes = 0;
    let pullFailures = 0;
    const signal = this.pod.signal;
    for (;;) {
      if (signal.aborted) return false;
      const startedAt = Date.now();
      const outcome = await this.#runOnce();
      if (signal.aborted) return false;
      if (outcome.kind === 'waiting') {
        // Image and configuration problems are retried whatever the restart policy says.
        const attempt = outcome.pull ? ++pullFailures : 1;
        const delay = backoffDelay(attempt, RESTART_BACKOFF_BASE_MS, RESTART_BACKOFF_CAP_MS);
        if (outcome.pull) {
          const message = this.record.state.waiting?.message ?? '';
          await sleep(Math.min(delay, 1000), signal);
          if (signal.aborted) return false;
          this.#setState({ waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${this.spec.image}": ErrImagePull: ${message}` } });
          this.#event('Normal', 'BackOff', `Back-off pulling image "${this.spec.image}"`);
          await sleep(Math.max(0, delay - 1000), signal);
        } else {
          await sleep(delay, signal);
        }
        continue;
      }
      pullFailures = 0;
      const restart = restartPolicy === 'Always' ? this.kind === 'regular' || outcome.exitCode !== 0 : restartPolicy === 'OnFailure' && outcome.exitCode !== 0;
      if (!restart) return outcome.exitCode === 0;
      if (Date.now() - startedAt > 60_000) crashes = 0;
      crashes++;
      const delay = backoffDelay(crashes, RESTART_BACKOFF_BASE_MS, RESTART_BACKOFF_CAP_MS);
      this.record.lastState = this.record.state;
      const p = this.pod.pod.metadata;
      this.#setState({
        waiting: {
          reason: 'CrashLoopBackOff',
          message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${this.spec.name} pod=${p?.name}_${p?.namespace}(${p?.uid})`,
        },
      });
      this.#event('Warning', 'BackOff', 'Back-off restarting failed container');
      await sleep(delay, signal);
      if (signal.aborted) return false;
      this.record.restartCount++;
    }
  }

  async #image(): Promise<Image | { error: string }> {
    const deps = this.pod.deps;
    const imageName = this.spec.image ?? '';
    const resolved = resolveImage(imageName, deps.imageMap);
    if (resolved.kind === 'invalid') return { error: resolved.message };
    if (resolved.kind === 'mapped') {
      return {
        entrypoint: resolved.mapping.command,
        cmd: [],
        env: { PATH: process.env.PATH ?? DEFAULT_PATH, HOME: '/root' },
        imageID: `nixery-node-mapped://${imageName}`,
      };
    }
    const policy = this.spec.imagePullPolicy ?? defaultPullPolicy(resolved.reference);
    let credentials: RegistryCredential[];
    try {
      credentials = credentialsFor(keyringFromSecrets(await this.#pullSecrets()), `${resolved.reference.registry}/${resolved.reference.repository}`);
    } catch (error) {
      return { error: errorMessage(error) };
    }
    this.#event('Normal', 'Pulling', `Pulling image "${imageName}"`);
    const began = Date.now();
    try {
      const pulled: PulledImage = await deps.puller.pull(imageName, resolved.reference, policy, credentials);
      this.#event('Normal', 'Pulled', `Successfully pulled image "${imageName}" in ${Date.now() - began}ms`);
      // HOME, unless the image or the container sets it, comes from the user's passwd entry (#runOnce).
      const image: Image = { entrypoint: pulled.entrypoint, cmd: pulled.cmd, env: { PATH: DEFAULT_PATH, ...pulled.env }, imageID: pulled.imageID, rootfs: pulled.rootfs };
      if (pulled.workingDir) image.workingDir = pulled.workingDir;
      if (pulled.user) image.user = pulled.user;
      return image;
    } catch (error) {
      return { error: error instanceof PullError ? error.message : errorMessage(error) };
    }
  }

  /** The pod's imagePullSecrets that exist; the kubelet pulls without the others and says so. */
  async #pullSecrets(): Promise<PullSecret[]> {
    const found: PullSecret[] = [];
    const missing: string[] = [];
    for (const ref of this.pod.pod.spec?.imagePullSecrets ?? []) {
      if (!ref.name) continue;
      const secret = await this.pod.deps.volumeSources.pullSecret(this.pod.namespace, ref.name).catch(() => undefined);
      if (secret) found.push(secret);
      else missing.push(ref.name);
    }
    if (missing.length > 0) {
      this.pod.deps.events.emit(this.pod.ref, 'Warning', 'FailedToRetrieveImagePullSecret', `Unable to retrieve some image pull secrets (${missing.join(', ')}); attempting to pull the image may not succeed.`);
    }
    return found;
  }

  async #env(): Promise<{ ok: true; env: Record<string, string> } | { ok: false; message: string }> {
    const deps = this.pod.deps;
    const namespace = this.pod.namespace;
    const refs = referencedSources(this.spec);
    const secrets = new Map<string, Record<string, string>>();
    const configMaps = new Map<string, Record<string, string>>();
    for (const name of refs.secrets) {
      const data = await deps.volumeSources.secret(namespace, name);
      if (data) secrets.set(name, Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString('utf8')])));
    }
    for (const name of refs.configMaps) {
      const data = await deps.volumeSources.configMap(namespace, name);
      if (data) configMaps.set(name, Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString('utf8')])));
    }
    return resolveEnv(this.pod.pod, this.spec, { secrets, configMaps, podIP: this.pod.record.podIP ?? '', hostIP: deps.hostIP, nodeName: deps.nodeName });
  }

  async #runOnce(): Promise<Outcome> {
    const deps = this.pod.deps;
    const instance = this.record.restartCount;
    const image = await this.#image();
    if ('error' in image) {
      const message = image.error;
      this.#event('Warning', 'Failed', `Failed to pull image "${this.spec.image}": ${message}`);
      this.#event('Warning', 'Failed', 'Error: ErrImagePull');
      this.#setState({ waiting: { reason: 'ErrImagePull', message } });
      return { kind: 'waiting', pull: true };
    }
    if (this.pod.signal.aborted) return { kind: 'waiting', pull: false };
    this.record.imageID = image.imageID;
    const containerEnv = await this.#env();
    if (!containerEnv.ok) {
      this.#event('Warning', 'Failed', `Error: ${containerEnv.message}`);
      this.#setState({ waiting: { reason: 'CreateContainerConfigError', message: containerEnv.message } });
      return { kind: 'waiting', pull: false };
    }
    // Who a pulled image runs as (mapped programs run as root on the host root, whatever the pod says).
    let identity: Identity | undefined;
    if (image.rootfs) {
      const resolved = resolveIdentity({
        pod: this.pod.pod,
        container: this.spec,
        user: image.user,
        passwd: await readInRoot(image.rootfs, '/etc/passwd'),
        group: await readInRoot(image.rootfs, '/etc/group'),
      });
      if (!resolved.ok) {
        this.#event('Warning', 'Failed', `Error: ${resolved.message}`);
        this.#setState({ waiting: { reason: resolved.reason, message: resolved.message } });
        return { kind: 'waiting', pull: false };
      }
      identity = resolved.identity;
    }
    const env: Record<string, string> = {
      ...image.env,
      HOSTNAME: podHostname(this.pod.pod).hostname,
      ...serviceLinkEnv(deps.services(), this.pod.namespace, this.pod.pod.spec?.enableServiceLinks ?? true, deps.serviceAddress),
      ...containerEnv.env,
    };
    if (identity && env.HOME === undefined) env.HOME = identity.home;
    const argv = containerArgv(image, this.spec, containerEnv.env);
    const root = image.rootfs ?? '/';
    const containerID = `nixery-node://${randomBytes(16).toString('hex')}`;
    this.record.containerID = containerID;
    const startError = (message: string): Outcome => {
      this.#event('Warning', 'Failed', `Error: ${message}`);
      const now = at();
      this.#setState({ terminated: { exitCode: 128, reason: 'StartError', message, startedAt: now, finishedAt: now, containerID } });
      this.#finished.add(instance);
      return { kind: 'exited', exitCode: 128 };
    };
    if (argv.length === 0) return startError('no command specified');
    if (!(await findExecutable(root, argv[0]!, env.PATH))) {
      return startError(`failed to create containerd task: exec: "${argv[0]}": executable file not found in $PATH`);
    }

    const dir = this.instanceDir(instance);
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.mkdir(dir, { recursive: true });
    const terminationLog = path.join(dir, 'termination-log');
    await fsp.writeFile(terminationLog, '');
    // Writable whoever the container runs as, as kubelet makes it.
    await fsp.chmod(terminationLog, 0o666);
    let mounts: BindMount[];
    try {
      mounts = await containerMounts(this.spec, this.pod.volumes);
    } catch (error) {
      return startError(errorMessage(error));
    }
    mounts.push({ source: this.pod.hostsPath, target: '/etc/hosts', readOnly: false, kind: 'file' });
    if (image.rootfs || fs.existsSync('/etc/hostname')) mounts.push({ source: this.pod.hostnamePath, target: '/etc/hostname', readOnly: false, kind: 'file' });
    mounts.push({ source: terminationLog, target: this.spec.terminationMessagePath || '/dev/termination-log', readOnly: false, kind: 'file' });

    if (image.rootfs) {
      const rootfs = image.rootfs;
      mounts = await Promise.all(mounts.map(async (m) => ({ ...m, target: await resolveMountTarget(rootfs, m.target) })));
    }
    if (!image.rootfs) {
      // On the host root a missing mount point is created on the host (see mountpoints.ts);
      // /dev is the container's own tmpfs, so nothing below it is.
      for (const m of mounts) if (!m.target.startsWith('/dev/')) await deps.mountPoints.ensure(m.target, m.kind);
    }
    const overlay = image.rootfs
      ? { lower: image.rootfs, upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), root: path.join(dir, 'root') }
      : undefined;
    if (overlay) for (const d of [overlay.upper, overlay.work, overlay.root]) await fsp.mkdir(d, { recursive: true });

    const logFile = this.logPath(instance);
    await fsp.mkdir(path.dirname(logFile), { recursive: true });
    const logStream = fs.createWriteStream(logFile, { flags: 'a' });
    const stdout = criWriter(logStream, 'stdout');
    const stderr = criWriter(logStream, 'stderr');
    this.#event('Normal', 'Created', `Created container ${this.spec.name}`);
    const processSpec: LaunchSpec = {
      argv,
      env,
      workingDir: this.spec.workingDir || image.workingDir || (image.rootfs ? '/' : this.pod.dir),
      hostname: podHostname(this.pod.pod).hostname,
      mounts,
    };
    let execContext: ExecContext | undefined;
    if (overlay && identity) {
      const security = effectiveSecurity(this.pod.pod, this.spec);
      const user = { uid: identity.uid, gid: identity.gid, groups: identity.groups };
      const noNewPrivileges = security.allowPrivilegeEscalation === false;
      Object.assign(processSpec, { image: overlay, user, readOnlyRoot: security.readOnlyRootFilesystem === true, noNewPrivileges });
      execContext = { root: overlay.root, workingDir: processSpec.workingDir, user, noNewPrivileges };
    }
    if (this.pod.signal.aborted) {
      logStream.end();
      return { kind: 'waiting', pull: false };
    }
    const proc = launch(processSpec, { stdout, stderr });
    this.#process = proc;
    const startedAt = at();
    let setupFailure: string | undefined;
    try {
      await proc.started;
    } catch (error) {
      setupFailure = errorMessage(error);
    }
    if (setupFailure === undefined) {
      this.record.started = !this.spec.startupProbe;
      this.record.ready = false;
      this.#setState({ running: { startedAt } });
      this.#event('Normal', 'Started', `Started container ${this.spec.name}`);
      this.#startProbes(proc, env, execContext);
    }
    const exit = await proc.exited;
    this.#process = undefined;
    for (const probe of this.#probes) probe.stop();
    this.#probes = [];
    await new Promise<void>((r) => stdout.end(r));
    await new Promise<void>((r) => stderr.end(r));
    await new Promise<void>((r) => logStream.end(r));
    this.#finished.add(instance);
    this.record.ready = false;
    this.record.started = false;
    if (setupFailure !== undefined) return startError(setupFailure);

    let message = '';
    try {
      const handle = await fsp.open(terminationLog, 'r');
      try {
        const buffer = Buffer.alloc(MAX_TERMINATION_MESSAGE);
        const { bytesRead } = await handle.read(buffer, 0, MAX_TERMINATION_MESSAGE, 0);
        message = buffer.subarray(0, bytesRead).toString('utf8');
      } finally {
        await handle.close();
      }
    } catch {
      // no message
    }
    if (!message && exit.exitCode !== 0 && this.spec.terminationMessagePolicy === 'FallbackToLogsOnError') message = await logTail(logFile);
    const terminated: NonNullable<V1ContainerState['terminated']> = {
      exitCode: exit.exitCode,
      reason: exit.exitCode === 0 ? 'Completed' : 'Error',
      startedAt,
      finishedAt: at(),
      containerID,
    };
    if (exit.signal) terminated.signal = exit.exitCode - 128;
    if (message) terminated.message = message;
    this.#setState({ terminated });
    return { kind: 'exited', exitCode: exit.exitCode };
  }

  #startProbes(proc: RunningProcess, env: Record<string, string>, exec: ExecContext | undefined): void {
    const target = { podIP: this.pod.record.podIP ?? '127.0.0.1', ports: this.spec.ports ?? [], pid: proc.pid, env, ...(exec ? { exec } : {}) };
    const onFailure = (kind: string) => (message: string) => {
      this.#event('Warning', 'Unhealthy', `${kind} probe failed: ${message}`);
      if (kind === 'Readiness') return;
      void this.stop(Math.min((this.pod.pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000, GRACE_CAP_MS), `Container ${this.spec.name} failed ${kind.toLowerCase()} probe, will be restarted`, proc);
    };
    const readinessAndLiveness = () => {
      if (this.spec.readinessProbe) {
        const fail = onFailure('Readiness');
        const worker = new ProbeWorker(this.spec.readinessProbe, target, (ok, message) => {
          if (this.record.ready !== ok) {
            this.record.ready = ok;
            this.pod.report();
          }
          if (!ok) fail(message);
        });
        this.#probes.push(worker);
        worker.start();
      } else {
        this.record.ready = true;
        this.pod.report();
      }
      if (this.spec.livenessProbe) {
        const fail = onFailure('Liveness');
        const worker = new ProbeWorker(this.spec.livenessProbe, target, (ok, message) => {
          if (!ok) fail(message);
        });
        this.#probes.push(worker);
        worker.start();
      }
    };
    if (this.kind === 'init') return;
    if (this.spec.startupProbe) {
      const fail = onFailure('Startup');
      const worker = new ProbeWorker(this.spec.startupProbe, target, (ok, message) => {
        if (!ok) return fail(message);
        worker.stop();
        this.record.started = true;
        this.pod.report();
        readinessAndLiveness();
      });
      this.#probes.push(worker);
      worker.start();
    } else {
      readinessAndLiveness();
    }
  }

  /** Kills the running instance (SIGTERM, then SIGKILL after graceMs) and waits for it to be gone. */
  stop(graceMs: number, reason: string, only?: RunningProcess): Promise<void> {
    const proc = this.#process;
    if (!proc || (only && proc !== only)) return Promise.resolve();
    if (this.#stopping) return this.#stopping;
    this.#event('Normal', 'Killing', reason === 'Stopping container' ? `Stopping container ${this.spec.name}` : reason);
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    this.#stopping = proc.exited.then(() => {
      clearTimeout(timer);
      this.#stopping = undefined;
    });
    return this.#stopping;
  }
}
