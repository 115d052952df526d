import { execFile } from '@nixery/test-support';
import { NIXERY_BIN } from './registry.ts';

/** Longer than any build of the test package sets takes; on SIGTERM `nixery build` stops Nix first. */
const BUILD_TIMEOUT_MS = 300_000;

export interface CliResult {
  code: number;
  json: Record<string, unknown>;
  stderr: string;
}

/** Runs `nixery build` and parses the one JSON document it prints, whatever the exit code. */
export function nixeryBuild(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [NIXERY_BIN, 'build', ...args], { env: { ...process.env, ...env }, maxBuffer: 16 << 20, timeout: BUILD_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error?.killed) return reject(new Error(`nixery build ${args.join(' ')} did not finish within ${BUILD_TIMEOUT_MS} ms:\n${stderr}`));
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      try {
        resolve({ code, json: JSON.parse(stdout) as Record<string, unknown>, stderr });
      } catch {
        reject(new Error(`nixery build ${args.join(' ')} printed no JSON (exit ${code}):\n${stdout}\n${stderr}`));
      }
    });
  });
}
