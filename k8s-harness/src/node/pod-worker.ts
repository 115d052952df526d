// One pod on this node, from scheduled to deleted: volumes, init containers in order, then the
// containers side by side, each restarted by the pod's restartPolicy with back-off, probed, and
// reported through the status subresource. Deletion stops containers (SIGTERM, then SIGKILL
// after the grace period) and, for a graceful deletion, finishes it with gracePeriodSeconds 0.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { V1Container, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { hostsFile, podHostname } from './hosts.ts';
import { errorMessage, isNotFound, mergePatch } from './kube.ts';
import { backoffDelay, comparable, nowSeconds } from './owners.ts';
import { podStatus, type ContainerRecord, type PodRecord } from './pod-status.ts';
import { prepareVolumes, syncVolumes, VolumeError, type PreparedVolume } from './volumes.ts';
import { ContainerRunner } from './container-runner.ts';
import { at, GRACE_CAP_MS, RESTART_BACKOFF_BASE_MS, RESTART_BACKOFF_CAP_MS, sleep, type PodWorkerDeps } from './pod-shared.ts';

export class PodWorker {
  pod: V1Pod;
  readonly uid: string;
  readonly dir: string;
  readonly record: PodRecord;
  readonly #deps: PodWorkerDeps;
  readonly #abort = new AbortController();
  readonly #runners = new Map<string, ContainerRunner>();
  #volumes: Map<string, PreparedVolume> | undefined;
  #reported: V1PodStatus | undefined;
  #reportedContent = '';
  #reportTimer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  #terminating: Promise<void> | undefined;
  #running: Promise<void> | undefined;
  #hostsContent = '';
  /** every container has run for good: nothing left to keep up to date */
  #finished = false;

  constructor(pod: V1Pod, deps: PodWorkerDeps) {
    this.pod = pod;
    this.uid = pod.metadata?.uid ?? '';
    this.#deps = deps;
    this.dir = path.join(deps.dataDir, 'pods', this.uid);
    this.#reported = pod.status;
    const waitingReason = (pod.spec?.initContainers ?? []).length > 0 ? 'PodInitializing' : 'ContainerCreating';
    const fresh = (c: V1Container, reason: string): ContainerRecord => ({
      name: c.name,
      image: c.image ?? '',
      imageID: '',
      restartCount: 0,
      state: { waiting: { reason } },
      ready: false,
      started: false,
    });
    this.record = {
      hostIP: deps.hostIP,
      initContainers: (pod.spec?.initContainers ?? []).map((c) => fresh(c, 'PodInitializing')),
      containers: (pod.spec?.containers ?? []).map((c) => fresh(c, waitingReason)),
    };
  }

  get name(): string {
    return this.pod.metadata?.name ?? '';
  }
  get namespace(): string {
    return this.pod.metadata?.namespace ?? 'default';
  }
  get signal(): AbortSignal {
    return this.#abort.signal;
  }
  get deps(): PodWorkerDeps {
    return this.#deps;
  }
  /** the object events are about */
  get ref(): V1Pod {
    return { ...this.pod, apiVersion: 'v1', kind: 'Pod' };
  }

  start(): void {
    this.#running = this.#run().catch((error: unknown) => {
      this.#deps.log({ msg: 'pod worker failed', pod: `${this.namespace}/${this.name}`, error: errorMessage(error) });
    });
  }

  update(pod: V1Pod): void {
    this.pod = pod;
    if (pod.metadata?.deletionTimestamp && !this.#terminating) {
      const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
      void this.terminate(grace).then(() => this.#finishDeletion());
    }
  }

  /** Where a container's log is, for the log endpoint: the current instance or the one before. */
  logFile(container: string, previous: boolean): { file: string; done: () => boolean } | { status: number; message: string } {
    const runner = this.#runners.get(container);
    if (!runner) return { status: 400, message: `container ${container} is not valid for pod ${this.name}` };
    const instance = previous ? runner.record.restartCount - 1 : runner.record.restartCount;
    if (instance < 0) return { status: 400, message: `previous terminated container "${container}" in pod "${this.name}" not found` };
    const file = runner.logPath(instance);
    if (!fs.existsSync(file)) {
      const reason = runner.record.state.waiting?.reason ?? 'ContainerCreating';
      return { status: 400, message: `container "${container}" in pod "${this.name}" is waiting to start: ${reason}` };
    }
    return { file, done: () => previous || runner.record.restartCount !== instance || runner.finishedInstance(instance) };
  }

  containerNames(): string[] {
    return [...this.#runners.keys()];
  }

  async #run(): Promise<void> {
    const restartPolicy = this.pod.spec?.restartPolicy ?? 'Always';
    const phase = this.pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') {
      // Finished before this agent started: nothing to run again, keep what was reported.
      return;
    }
    await fsp.mkdir(this.dir, { recursive: true });
    this.record.podIP = this.#deps.allocateIP(this.uid);
    this.record.startTime = at();
    for (const spec of this.pod.spec?.initContainers ?? []) this.#runners.set(spec.name, new ContainerRunner(this, spec, 'init', this.record.initContainers.find((c) => c.name === spec.name)!));
    for (const spec of this.pod.spec?.containers ?? []) this.#runners.set(spec.name, new ContainerRunner(this, spec, 'regular', this.record.containers.find((c) => c.name === spec.name)!));
    await this.writeHosts();
    await fsp.writeFile(this.hostnamePath, `${podHostname(this.pod).hostname}\n`);
    this.report();

    for (let attempt = 1; !this.signal.aborted; attempt++) {
      try {
        this.#volumes = await prepareVolumes(this.pod, this.dir, this.#deps.dataDir, this.#deps.volumeSources, this.record.podIP, this.#deps.hostPaths);
        this.#waitingMessage(undefined);
        break;
      } catch (error) {
        const message =
          error instanceof VolumeError && error.volume !== undefined
            ? `MountVolume.SetUp failed for volume "${error.volume}" : ${error.message}`
            : `MountVolume.SetUp failed: ${error instanceof VolumeError ? error.message : errorMessage(error)}`;
        this.#deps.events.emit(this.ref, 'Warning', 'FailedMount', message);
        // A kubelet only says this in events; the status says it too, so a stuck pod explains itself.
        this.#waitingMessage(message);
        await sleep(backoffDelay(attempt, RESTART_BACKOFF_BASE_MS, RESTART_BACKOFF_CAP_MS), this.signal);
      }
    }
    if (this.signal.aborted) return;
    void this.#syncVolumes();

    for (const spec of this.pod.spec?.initContainers ?? []) {
      const runner = this.#runners.get(spec.name)!;
      const ok = await runner.loop(restartPolicy);
      if (this.signal.aborted) return;
      if (!ok) {
        this.#finished = true;
        this.record.terminalPhase = 'Failed';
        for (const c of this.record.containers) c.state = { waiting: { reason: 'PodInitializing' } };
        this.report();
        return;
      }
    }
    for (const c of this.record.containers) {
      if (c.state.waiting?.reason === 'PodInitializing') c.state = { waiting: { reason: 'ContainerCreating' } };
    }
    this.report();
    await Promise.all((this.pod.spec?.containers ?? []).map((spec) => this.#runners.get(spec.name)!.loop(restartPolicy)));
    this.#finished = true;
    this.report();
  }

  #waitingMessage(message: string | undefined): void {
    for (const c of [...this.record.initContainers, ...this.record.containers]) {
      const waiting = c.state.waiting;
      if (!waiting || waiting.message === message) continue;
      c.state = { waiting: { ...(waiting.reason ? { reason: waiting.reason } : {}), ...(message ? { message } : {}) } };
    }
    this.report();
  }

  /**
   * The kubelet's periodic sync of Secret, ConfigMap, downward API and projected volumes: every
   * sync period (sooner when a token is due) what changed is written again, atomically; a volume
   * that cannot be brought up to date keeps its files and says why in a FailedMount event (once
   * per reason). Ends with the pod.
   */
  async #syncVolumes(): Promise<void> {
    const period = this.#deps.volumeSyncPeriodMs;
    const reported = new Map<string, string>();
    while (!this.signal.aborted && !this.#finished) {
      let next = Date.now() + period;
      try {
        const result = await syncVolumes(this.pod, this.volumes, this.#deps.volumeSources, this.record.podIP ?? '');
        for (const { volume, message } of result.failed) {
          if (reported.get(volume) === message) continue;
          reported.set(volume, message);
          this.#deps.events.emit(this.ref, 'Warning', 'FailedMount', `MountVolume.SetUp failed for volume "${volume}" : ${message}`);
        }
        for (const volume of [...reported.keys()]) if (!result.failed.some((f) => f.volume === volume)) reported.delete(volume);
        if (result.nextTokenDue !== undefined) next = Math.min(next, result.nextTokenDue);
      } catch (error) {
        this.#deps.log({ msg: 'volume sync failed', pod: `${this.namespace}/${this.name}`, error: errorMessage(error) });
      }
      await sleep(Math.max(next - Date.now(), 200), this.signal);
    }
  }

  get hostsPath(): string {
    return path.join(this.dir, 'etc-hosts');
  }
  get hostnamePath(): string {
    return path.join(this.dir, 'etc-hostname');
  }
  get volumes(): ReadonlyMap<string, PreparedVolume> {
    return this.#volumes ?? new Map();
  }

  /** Rewrites the hosts file in place (the bind mounts hold its inode), when the Services changed. */
  async writeHosts(): Promise<void> {
    if (!this.record.podIP) return;
    const content = hostsFile(this.pod, this.record.podIP, this.#deps.serviceRecords());
    if (content === this.#hostsContent) return;
    this.#hostsContent = content;
    await fsp.writeFile(this.hostsPath, content).catch(() => {});
  }

  /** Reports the status soon; calls close together become one write. */
  report(): void {
    if (this.#reportTimer) return;
    this.#reportTimer = setTimeout(() => {
      this.#reportTimer = undefined;
      this.#writing = this.#writing.then(() => this.#writeStatus());
    }, 20);
  }

  async #writeStatus(): Promise<void> {
    if (this.#terminatedForGood) return;
    const status = podStatus(this.pod, this.record, this.#reported, nowSeconds());
    const content = comparable(status);
    if (content === this.#reportedContent) return;
    this.#reported = status;
    this.#reportedContent = content;
    const body = { status: { ...status, reason: status.reason ?? null, message: status.message ?? null } };
    try {
      await this.#deps.kube.core.patchNamespacedPodStatus({ name: this.name, namespace: this.namespace, body }, mergePatch);
    } catch (error) {
      if (isNotFound(error)) return;
      this.#reportedContent = '';
      this.#deps.log({ msg: 'pod status update failed', pod: `${this.namespace}/${this.name}`, error: errorMessage(error) });
      setTimeout(() => this.report(), 1000);
    }
  }

  #terminatedForGood = false;

  /** Stops every container: SIGTERM, SIGKILL after the grace period (capped at GRACE_CAP_MS). */
  terminate(graceSeconds: number): Promise<void> {
    if (!this.#terminating) {
      this.#abort.abort();
      const graceMs = Math.min(Math.max(graceSeconds, 0) * 1000, GRACE_CAP_MS);
      this.#terminating = Promise.all([...this.#runners.values()].map((r) => r.stop(graceMs, 'Stopping container'))).then(async () => {
        // The loops end once their processes are gone; a pull in progress is not waited for.
        await Promise.race([this.#running, new Promise((r) => setTimeout(r, 2000))]);
        this.report();
        await new Promise((r) => setTimeout(r, 30));
        await this.#writing;
      });
    }
    return this.#terminating;
  }

  async #finishDeletion(): Promise<void> {
    try {
      await this.#deps.kube.core.deleteNamespacedPod({
        name: this.name,
        namespace: this.namespace,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid: this.uid } },
      });
    } catch (error) {
      if (!isNotFound(error)) this.#deps.log({ msg: 'pod deletion failed', pod: `${this.namespace}/${this.name}`, error: errorMessage(error) });
    }
  }

  /** After the pod is gone from the API: stop, then remove its directory (volumes, logs). */
  async remove(): Promise<void> {
    this.#terminatedForGood = true;
    await this.terminate(this.pod.spec?.terminationGracePeriodSeconds ?? 30);
    clearTimeout(this.#reportTimer);
    await fsp.rm(this.dir, { recursive: true, force: true }).catch(() => {});
  }

  /** For the agent's own shutdown: stop quickly, report nothing more. */
  async shutdown(graceMs: number): Promise<void> {
    this.#terminatedForGood = true;
    await this.terminate(graceMs / 1000);
    clearTimeout(this.#reportTimer);
  }
}
