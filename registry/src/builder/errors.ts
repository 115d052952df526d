// How a build failed decides the HTTP answer, the metric label and the CLI exit code.
import { GitRefNotFoundError, NixBuildError, NixEvaluationError, NixTimeoutError, PackagesNotFoundError } from '../nix/index.ts';
import { ChannelUnavailableError } from './source-fingerprint.ts';
import type { BuildOutcome } from '../metrics/metrics.ts';

/** A storage write or read failed while building; distinct from a Nix failure. */
export class BuildStorageError extends Error {
  readonly code = 'STORAGE_FAILURE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BuildStorageError';
  }
}

export function buildOutcome(error: unknown): BuildOutcome {
  if (error instanceof PackagesNotFoundError || error instanceof GitRefNotFoundError) return 'not_found';
  if (error instanceof NixTimeoutError) return 'timeout';
  if (error instanceof NixBuildError || error instanceof NixEvaluationError || error instanceof ChannelUnavailableError) return 'nix_failure';
  if (error instanceof BuildStorageError) return 'storage_failure';
  return 'error';
}

/** Exit codes of `nixery build`, one per kind of failure so scripts and the operator can tell them apart. */
export const EXIT_CODES: Record<BuildOutcome | 'usage' | 'push_failure', number> = {
  success: 0,
  error: 1,
  usage: 64,
  not_found: 2,
  nix_failure: 3,
  timeout: 4,
  storage_failure: 5,
  push_failure: 6,
};
