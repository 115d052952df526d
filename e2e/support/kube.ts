// Driving the test cluster (or a real one) with the real clients.
import { run, type RunResult } from '@nixery/test-support';

export type KubectlResult = RunResult;

/** Runs kubectl against `kubeconfig`; resolves with the exit code instead of throwing. */
export function kubectl(kubeconfig: string, args: string[], input?: string): Promise<KubectlResult> {
  return run('kubectl', args, { env: { ...process.env, KUBECONFIG: kubeconfig }, timeoutMs: 180_000, ...(input !== undefined ? { input } : {}) });
}

/** kubectl that must succeed. */
export async function kubectlOk(kubeconfig: string, args: string[], input?: string): Promise<string> {
  const result = await kubectl(kubeconfig, args, input);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}):\n${result.stderr}${result.stdout}`);
  return result.stdout;
}
