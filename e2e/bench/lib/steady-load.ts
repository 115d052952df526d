// A steady load: requests sent at a fixed rate whatever the server does (an open loop, as wrk2
// does), each request's latency counted from the moment it was due, not from when a free
// connection let it go. A closed loop (wrk: N connections, each sending when its last answer
// came) sends less while the server stalls, so a stall costs few samples and hides in p99
// ("coordinated omission"); here a stall delays every request due during it, as it would delay
// the pulls of a cluster's nodes. wrk2 is not packaged, so this is a small Node generator.
import http from 'node:http';
import os from 'node:os';

export interface SteadyTarget {
  name: string;
  url: string;
  headers?: Record<string, string>;
  perSecond: number;
}

export interface Sample {
  target: string;
  /** performance.now() when the request was due, and when its body had been read. */
  dueAt: number;
  endedAt: number;
  status: number;
  bytes: number;
  error?: string;
}

export interface SteadyLoadOptions {
  /** Sending stops once this resolves, or after maxSeconds, whichever is first. */
  until?: Promise<unknown>;
  maxSeconds: number;
  /** Connections per target (a keep-alive pool); requests due while all are busy wait for one, their wait counted. */
  connections?: number;
  /** A request not answered within this many ms is an error sample. */
  requestTimeoutMs?: number;
  /**
   * Nice value of the generating thread while the load runs (restored after). The generator shares
   * the machine with the server under test; below 0 (root only), a build that saturates the cores
   * does not delay the generator's own sending and reading, which would count as the server's latency.
   */
  nice?: number;
}

/** Runs the load and resolves with one sample per request, once every request sent has ended. */
export async function steadyLoad(targets: SteadyTarget[], options: SteadyLoadOptions): Promise<Sample[]> {
  for (const t of targets) {
    if (!/^http:\/\/127\.\d+\.\d+\.\d+:\d+\//.test(t.url)) throw new Error(`the steady load only targets loopback addresses, not ${t.url}`);
    if (!(t.perSecond > 0 && t.perSecond <= 5000)) throw new Error(`${t.name}: a rate of ${t.perSecond}/s is outside 0 < rate ≤ 5000`);
  }
  if (options.nice === undefined) return generate(targets, options);
  const niceBefore = os.getPriority(0);
  // On Linux, this thread alone: the one that sends, reads and times every request.
  os.setPriority(0, options.nice);
  try {
    return await generate(targets, options);
  } finally {
    os.setPriority(0, niceBefore);
  }
}

async function generate(targets: SteadyTarget[], options: SteadyLoadOptions): Promise<Sample[]> {
  let stopped = false;
  const stopAt = performance.now() + options.maxSeconds * 1000;
  void options.until?.finally(() => (stopped = true));
  const samples: Sample[] = [];
  const inFlight = new Set<Promise<void>>();
  const agents: http.Agent[] = [];
  const senders = targets.map(async (target) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections ?? 16 });
    agents.push(agent);
    const interval = 1000 / target.perSecond;
    const start = performance.now();
    for (let i = 0; ; i++) {
      const due = start + i * interval;
      if (stopped || due >= stopAt) break;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (stopped) break;
      const p = send(target, agent, due, options.requestTimeoutMs ?? 30_000).then((s) => {
        samples.push(s);
        inFlight.delete(p);
      });
      inFlight.add(p);
    }
  });
  await Promise.all(senders);
  await Promise.all([...inFlight]);
  for (const a of agents) a.destroy();
  return samples.sort((a, b) => a.dueAt - b.dueAt);
}

function send(target: SteadyTarget, agent: http.Agent, dueAt: number, timeoutMs: number): Promise<Sample> {
  return new Promise((resolve) => {
    let bytes = 0;
    let settled = false;
    const finish = (status: number, error?: string) => {
      if (settled) return;
      settled = true;
      resolve({ target: target.name, dueAt, endedAt: performance.now(), status, bytes, ...(error ? { error } : {}) });
    };
    const request = http.get(target.url, { agent, headers: target.headers ?? {}, timeout: timeoutMs }, (response) => {
      response.on('data', (chunk: Buffer) => (bytes += chunk.length));
      response.on('end', () => {
        const expected = Number(response.headers['content-length'] ?? bytes);
        finish(response.statusCode ?? 0, bytes === expected ? undefined : `${bytes} of ${expected} bytes`);
      });
      response.on('error', (e) => finish(response.statusCode ?? 0, e.message));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', (e) => finish(0, e.message));
  });
}

export interface LatencySummary {
  requests: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  /** Requests a second actually sent over the window. */
  rate: number;
  /** What went wrong with the first failed request, if one did. */
  firstFailure?: string;
}

/** Latency percentiles of one target's samples that were due within [from, to). */
export function summarize(samples: Sample[], target: string, from = -Infinity, to = Infinity): LatencySummary {
  const chosen = samples.filter((s) => s.target === target && s.dueAt >= from && s.dueAt < to);
  const latencies = chosen.map((s) => s.endedAt - s.dueAt).sort((a, b) => a - b);
  const failures = chosen.filter((s) => s.error !== undefined || s.status < 200 || s.status > 299);
  const span = chosen.length > 1 ? (chosen.at(-1)!.dueAt - chosen[0]!.dueAt) / 1000 : NaN;
  const first = failures[0];
  return {
    requests: chosen.length,
    failed: failures.length,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    rate: chosen.length / span,
    ...(first ? { firstFailure: `status ${first.status}${first.error ? `: ${first.error}` : ''}` } : {}),
  };
}

/** The nearest-rank percentile of sorted values (NaN for none). */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
