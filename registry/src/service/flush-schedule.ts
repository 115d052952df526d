// When records batched in memory are written (service/tags.ts, service/pulls.ts): a flush about
// `intervalMs` after a record needs one, jittered by ±20 % so that replicas sharing storage do not
// write at the same moments every time; one flush at a time; no timer once closed. The timer is
// unref'd: waiting records never keep the process alive (close() is how they get written).
export class FlushSchedule {
  private readonly intervalMs: number;
  private readonly flushNow: () => Promise<void>;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;

  /** `flushNow` writes what waits and never rejects. */
  constructor(intervalMs: number, flushNow: () => Promise<void>) {
    this.intervalMs = intervalMs;
    this.flushNow = flushNow;
  }

  /** A flush within about intervalMs, unless one is due already or the schedule is closed. */
  soon(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.intervalMs * (0.8 + 0.4 * Math.random()));
    this.timer.unref();
  }

  /** A flush now, after the one running; the one that was due is no longer. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => {
      clearTimeout(this.timer);
      this.timer = undefined;
      return this.flushNow();
    });
    return this.flushing;
  }

  /** No timer from now on; flush() still writes when asked. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
