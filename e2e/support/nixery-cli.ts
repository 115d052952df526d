import { execFile } from 'node:child_process';
import { NIXERY_BIN } from './registry.ts';

export interface CliResult {
  code: number;
  json: Record<string, unknown>;
  stderr: string;
}

/** Runs `nixery build` and parses the one JSON document it prints, whatever the exit code. */
export function nixeryBuild(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [NIXERY_BIN, 'build', ...args], { env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      try {
        resolve({ code, json: JSON.parse(stdout) as Record<string, unknown>, stderr });
      } catch {
        reject(new Error(`nixery build ${args.join(' ')} printed no JSON (exit ${code}):\n${stdout}\n${stderr}`));
      }
    });
  });
}
