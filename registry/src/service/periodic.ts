// A job the server runs every `intervalMs` (the purge, garbage collection): on an unref'd timer
// that is set again only once a run ended, so runs never overlap and a pending run never keeps the
// process alive; `run()` during a run joins it; it stops with the server without holding the
// close up. Subclasses say what one run does (`runOnce`, which must never reject).
import type { Server } from 'node:http';

export abstract class PeriodicRun<T> {
  readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<T> | undefined;
  private stopped = false;

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /** Runs every intervalMs from now on, until stop(). */
  start(): this {
    this.schedule();
    return this;
  }

  /** Stops when `server` closes (without holding the close up). */
  stopWith(server: Server): this {
    server.once('close', () => void this.stop());
    return this;
  }

  /** True while a next run is scheduled. */
  get scheduled(): boolean {
    return this.timer !== undefined;
  }

  /** No further run starts; resolves once a run in progress ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One run now; while one is in progress, that one (runs never overlap). Never rejects. */
  run(): Promise<T> {
    this.running ??= this.runOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  /** One run; never rejects (a failure is counted and logged, and the next run comes as usual). */
  protected abstract runOnce(): Promise<T>;

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run().finally(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }
}
