// Waiting for something that happens in its own time (a pod to start, a process to end): poll a
// check until it gives a value, and fail naming what was waited for once the bound has passed.

/**
 * Polls `check` every `intervalMs` until it returns a value other than undefined, and resolves
 * with that value. A check that throws counts as not yet; after `timeoutMs` the wait fails with
 * `what` and the last error.
 */
export async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, intervalMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last instanceof Error ? last.message : String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
