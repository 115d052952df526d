// Shared by the tests of this folder: they run the real Nix against the
// offline package set.
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
