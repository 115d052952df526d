// Runs a reconciler: workers take keys from a rate-limited queue; success forgets the key's
// failures and honours a requested requeue, failure retries with backoff. Level-triggered: the
// reconciler reads the current state every time, so a lost or duplicate event does no harm.
import type { Logger } from '@nixery/registry/operator-api';
import type { OperatorMetrics } from '../metrics.ts';
import { WorkQueue } from './work-queue.ts';

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export type Reconcile = (key: string) => Promise<ReconcileResult | void>;

export class Controller {
  readonly name: string;
  readonly queue = new WorkQueue();
  private readonly reconcile: Reconcile;
  private readonly log: Logger;
  private readonly metrics: OperatorMetrics;
  private readonly workers: number;

  constructor(name: string, reconcile: Reconcile, options: { log: Logger; metrics: OperatorMetrics; workers?: number }) {
    this.name = name;
    this.reconcile = reconcile;
    this.log = options.log.child({ controller: name });
    this.metrics = options.metrics;
    this.workers = options.workers ?? 2;
  }

  /** Runs until the queue is shut down. */
  async run(): Promise<void> {
    await Promise.all(Array.from({ length: this.workers }, () => this.worker()));
  }

  stop(): void {
    this.queue.shutdown();
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.metrics.queueDepth.set({ controller: this.name }, this.queue.length);
      const started = performance.now();
      try {
        const result = await this.reconcile(key);
        this.queue.forget(key);
        if (result?.requeueAfterMs) this.queue.addAfter(key, result.requeueAfterMs);
        this.metrics.reconciles.inc({ controller: this.name, result: 'success' });
      } catch (error) {
        const delay = this.queue.addRateLimited(key);
        this.metrics.reconciles.inc({ controller: this.name, result: 'error' });
        this.log.warn('reconcile failed; retrying', { key, retryInMs: delay, error: describe(error) });
      } finally {
        this.metrics.reconcileDuration.observe({ controller: this.name }, (performance.now() - started) / 1000);
        this.queue.done(key);
      }
    }
  }
}

function describe(error: unknown): unknown {
  const e = error as { code?: unknown; body?: unknown; message?: string };
  return { message: e.message, code: e.code, body: typeof e.body === 'string' ? e.body.slice(0, 500) : e.body };
}
