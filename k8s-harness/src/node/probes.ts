// Readiness, liveness and startup probes: one probe attempt (httpGet, tcpSocket, exec), and a
// worker that runs attempts on the probe's schedule and reports when its verdict flips.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { V1ContainerPort, V1Probe } from '@kubernetes/client-node';
import { execIn, type ExecContext } from './launcher.ts';

export interface ProbeTarget {
  podIP: string;
  ports: readonly V1ContainerPort[];
  /** the container's main process, for exec probes */
  pid: number;
  env: Record<string, string>;
  /** a pulled image's container: exec probes run in its root, as its user */
  exec?: ExecContext;
}

export interface ProbeResult {
  ok: boolean;
  message: string;
}

export function resolvePort(port: number | string | undefined, ports: readonly V1ContainerPort[]): number | undefined {
  if (typeof port === 'number') return port;
  if (port === undefined) return undefined;
  if (/^\d+$/.test(port)) return Number(port);
  return ports.find((p) => p.name === port)?.containerPort;
}

/** One attempt, bounded by timeoutSeconds (default 1 s). */
export async function probeOnce(probe: V1Probe, target: ProbeTarget): Promise<ProbeResult> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  if (probe.exec) {
    const result = await execIn(target.pid, probe.exec.command ?? [], target.env, timeoutMs, target.exec);
    return { ok: result.exitCode === 0, message: result.exitCode === 0 ? '' : `command ${JSON.stringify(probe.exec.command)} exited with ${result.exitCode}: ${result.output.trim()}` };
  }
  if (probe.httpGet) {
    const get = probe.httpGet;
    const port = resolvePort(get.port as number | string, target.ports);
    if (port === undefined) return { ok: false, message: `port ${String(get.port)} not found` };
    const host = get.host || target.podIP;
    const secure = (get.scheme ?? 'HTTP').toUpperCase() === 'HTTPS';
    const headers: Record<string, string> = { 'User-Agent': 'kube-probe/1.31', Accept: '*/*' };
    for (const h of get.httpHeaders ?? []) headers[h.name] = h.value;
    return new Promise((resolve) => {
      const request = (secure ? https : http).request(
        { host, port, path: get.path || '/', method: 'GET', headers, timeout: timeoutMs, ...(secure ? { rejectUnauthorized: false } : {}) },
        (response) => {
          response.resume();
          const status = response.statusCode ?? 0;
          // Kubernetes counts 200–399 as success (redirects included).
          resolve({ ok: status >= 200 && status < 400, message: status >= 200 && status < 400 ? '' : `HTTP probe failed with statuscode: ${status}` });
        },
      );
      request.on('timeout', () => request.destroy(new Error('context deadline exceeded (Client.Timeout exceeded while awaiting headers)')));
      request.on('error', (error) => resolve({ ok: false, message: `Get "${secure ? 'https' : 'http'}://${host}:${port}${get.path || '/'}": ${error.message}` }));
      request.end();
    });
  }
  if (probe.tcpSocket) {
    const port = resolvePort(probe.tcpSocket.port as number | string, target.ports);
    if (port === undefined) return { ok: false, message: `port ${String(probe.tcpSocket.port)} not found` };
    const host = probe.tcpSocket.host || target.podIP;
    return new Promise((resolve) => {
      const socket = net.connect({ host, port, timeout: timeoutMs });
      socket.once('connect', () => {
        socket.destroy();
        resolve({ ok: true, message: '' });
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve({ ok: false, message: `dial tcp ${host}:${port}: i/o timeout` });
      });
      socket.once('error', (error) => resolve({ ok: false, message: `dial tcp ${host}:${port}: ${error.message}` }));
    });
  }
  return { ok: false, message: 'probe type not supported on this node (grpc)' };
}

/**
 * Runs a probe every periodSeconds after initialDelaySeconds; the verdict turns to success after
 * successThreshold consecutive successes and to failure after failureThreshold consecutive failures.
 */
export class ProbeWorker {
  readonly #probe: V1Probe;
  readonly #target: ProbeTarget;
  readonly #onVerdict: (ok: boolean, message: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #verdict: boolean | undefined;
  #successes = 0;
  #failures = 0;

  constructor(probe: V1Probe, target: ProbeTarget, onVerdict: (ok: boolean, message: string) => void) {
    this.#probe = probe;
    this.#target = target;
    this.#onVerdict = onVerdict;
  }

  start(): void {
    this.#schedule((this.#probe.initialDelaySeconds ?? 0) * 1000);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), ms);
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    const result = await probeOnce(this.#probe, this.#target);
    if (this.#stopped) return;
    if (result.ok) {
      this.#failures = 0;
      this.#successes++;
      if (this.#verdict !== true && this.#successes >= (this.#probe.successThreshold ?? 1)) {
        this.#verdict = true;
        this.#onVerdict(true, '');
      }
    } else {
      this.#successes = 0;
      this.#failures++;
      if (this.#verdict !== false && this.#failures >= (this.#probe.failureThreshold ?? 3)) {
        this.#verdict = false;
        this.#onVerdict(false, result.message);
      } else if (this.#verdict === false) {
        this.#onVerdict(false, result.message);
      }
    }
    this.#schedule((this.#probe.periodSeconds ?? 10) * 1000);
  }
}
