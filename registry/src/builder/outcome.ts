// How a build ends, classified once from the error types. Everything that reports a failure maps
// from this: the HTTP answer (status, OCI error code, message), the exit code and JSON of
// `nixery build`, the `result` label of the build metrics, and the operator's condition reasons
// (it reads `outcome` from the build summary).
import { ConfigError } from '../config/config.ts';
import { InvalidNameError, InvalidTagError } from '../image/name.ts';
import { GitRefNotFoundError, NixBuildError, NixEvaluationError, NixTimeoutError, PackagesNotFoundError, type NixPhase } from '../nix/index.ts';
import { PushError } from '../push/client.ts';
import { StorageUnavailableError } from '../storage/backend.ts';
import { BuildStorageError, ClosureTooLargeError } from './errors.ts';
import { InsufficientSpaceError, type VolumeName } from './free-space.ts';
import { ChannelUnavailableError } from './source-fingerprint.ts';
import { StorageQuotaExceededError } from '../service/quota.ts';

/**
 * What a failure is reported as: `error.outcome` of the build summary and of `nixery build`'s JSON,
 * and the `result` label of nixery_builds_total. Stable strings: the operator and dashboards read them.
 */
export const FAILURE_OUTCOMES = ['not_found', 'nix_failure', 'timeout', 'storage_failure', 'push_failure', 'usage', 'error'] as const;
export type FailureOutcome = (typeof FAILURE_OUTCOMES)[number];
export type Outcome = 'success' | FailureOutcome;

/** Every kind of failure with the facts it carries; `outcome` is what it is reported as. */
export type Failure =
  /** Requested names that address no package (including those that exist but fail to evaluate). */
  | { kind: 'packages_not_found'; outcome: 'not_found'; message: string; packages: string[] }
  /** A git source has no branch, tag or commit named like the image tag. */
  | { kind: 'git_ref_not_found'; outcome: 'not_found'; message: string; url: string; ref: string }
  /** The channel tarball could not be fetched. */
  | { kind: 'channel_unavailable'; outcome: 'nix_failure'; message: string; url: string; status: number }
  /** Nix could not build some of the requested packages. */
  | { kind: 'nix_build_failed'; outcome: 'nix_failure'; message: string; packages: string[] }
  /** The package source itself failed to load or evaluate. */
  | { kind: 'nix_evaluation_failed'; outcome: 'nix_failure'; message: string }
  | { kind: 'nix_timeout'; outcome: 'timeout'; message: string; seconds: number; phase: NixPhase }
  /** Storage failed while building, or could not be opened at all. */
  | { kind: 'storage_failure'; outcome: 'storage_failure'; message: string }
  /** A file system a build writes to (the storage, the Nix store) is below the free-space reserve: nothing was built. */
  | { kind: 'insufficient_space'; outcome: 'storage_failure'; message: string; volume: VolumeName; freeBytes: number; reserveBytes: number }
  /** The image would not fit in the storage quota (NIXERY_STORAGE_QUOTA) even if every on-demand image were evicted: nothing was packed. */
  | { kind: 'storage_quota_exceeded'; outcome: 'storage_failure'; message: string; imageBytes: number; pinnedBytes: number; quotaBytes: number; retryAfterSeconds: number }
  /** `nixery build --push`: the target registry refused or failed the push. */
  | { kind: 'push_failure'; outcome: 'push_failure'; message: string }
  /** An invocation that cannot work: configuration, image name or tag, a command-line flag. */
  | { kind: 'usage'; outcome: 'usage'; message: string }
  /** An on-demand image larger than the registry builds (NIXERY_MAX_CLOSURE_SIZE): a request that cannot work here. */
  | { kind: 'closure_too_large'; outcome: 'usage'; message: string; closureBytes: number; maxClosureBytes: number }
  /** Anything else: a bug or an unexpected condition, see the log. */
  | { kind: 'internal'; outcome: 'error'; message: string };

/** A command line that cannot work (a bad flag value, a missing setting it needs): a usage failure. */
export class UsageError extends Error {}

export function classifyFailure(error: unknown): Failure {
  const message = (error as Error | undefined)?.message ?? String(error);
  if (error instanceof PackagesNotFoundError) return { kind: 'packages_not_found', outcome: 'not_found', message, packages: error.packages };
  // Before NixEvaluationError: a missing git ref is a kind of evaluation failure.
  if (error instanceof GitRefNotFoundError) return { kind: 'git_ref_not_found', outcome: 'not_found', message, url: error.url, ref: error.ref };
  if (error instanceof NixTimeoutError) return { kind: 'nix_timeout', outcome: 'timeout', message, seconds: error.seconds, phase: error.phase };
  if (error instanceof NixBuildError) return { kind: 'nix_build_failed', outcome: 'nix_failure', message, packages: error.packages };
  if (error instanceof NixEvaluationError) return { kind: 'nix_evaluation_failed', outcome: 'nix_failure', message };
  if (error instanceof ChannelUnavailableError) {
    return { kind: 'channel_unavailable', outcome: 'nix_failure', message, url: error.url, status: error.status };
  }
  if (error instanceof InsufficientSpaceError) {
    return { kind: 'insufficient_space', outcome: 'storage_failure', message, volume: error.volume, freeBytes: error.freeBytes, reserveBytes: error.reserveBytes };
  }
  if (error instanceof StorageQuotaExceededError) {
    const { imageBytes, pinnedBytes, quotaBytes, retryAfterSeconds } = error;
    return { kind: 'storage_quota_exceeded', outcome: 'storage_failure', message, imageBytes, pinnedBytes, quotaBytes, retryAfterSeconds };
  }
  if (error instanceof BuildStorageError || error instanceof StorageUnavailableError) return { kind: 'storage_failure', outcome: 'storage_failure', message };
  if (error instanceof ClosureTooLargeError) {
    return { kind: 'closure_too_large', outcome: 'usage', message, closureBytes: error.closureBytes, maxClosureBytes: error.maxClosureBytes };
  }
  if (error instanceof PushError) return { kind: 'push_failure', outcome: 'push_failure', message };
  if (error instanceof UsageError || error instanceof ConfigError || error instanceof InvalidNameError || error instanceof InvalidTagError) {
    return { kind: 'usage', outcome: 'usage', message };
  }
  return { kind: 'internal', outcome: 'error', message };
}
