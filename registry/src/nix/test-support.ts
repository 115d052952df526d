// Shared by the tests of this folder: they run the real Nix against the
// offline package set.
import fs from 'node:fs';
import path from 'node:path';
import { silentLogger } from '../log/logger.ts';
import { defaultNixDir } from './nix-dir.ts';
import type { NixOptions } from './realise.ts';

export const offlineSetPath = path.join(defaultNixDir(), 'offline');

export function testOptions(overrides: Partial<NixOptions> = {}): NixOptions {
  return {
    timeoutSeconds: 60,
    log: silentLogger,
    // No binary cache is reachable in tests; without this Nix retries it for ~4 s per call.
    nixOptions: { substituters: '' },
    ...overrides,
  };
}

/** Live (not zombie) processes whose command line contains `needle`. */
export function processesMatching(needle: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      const state = /^State:\s+(\S)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      if (cmdline.includes(needle) && state !== 'Z') found.push(`${pid} ${cmdline}`);
    } catch {
      // The process ended while being looked at.
    }
  }
  return found;
}

/** For `eventually`: true once no process matches `needle`; until then it throws, listing them. */
export function noProcessMatching(needle: string): true {
  const left = processesMatching(needle);
  if (left.length > 0) throw new Error(`still running:\n${left.join('\n')}`);
  return true;
}
