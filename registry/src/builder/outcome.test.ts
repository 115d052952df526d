import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../config/config.ts';
import { InvalidNameError, InvalidTagError } from '../image/name.ts';
import { GitRefNotFoundError, NixBuildError, NixEvaluationError, NixTimeoutError, PackagesNotFoundError } from '../nix/index.ts';
import { PushError } from '../push/client.ts';
import { StorageUnavailableError } from '../storage/backend.ts';
import { BuildStorageError, ClosureTooLargeError } from './errors.ts';
import { InsufficientSpaceError } from './free-space.ts';
import { classifyFailure, FAILURE_OUTCOMES, UsageError } from './outcome.ts';
import { ChannelUnavailableError } from './source-fingerprint.ts';
import { summarizeFailure } from './summary.ts';

describe('build failure outcomes', () => {
  it('classify every error type once, with the outcome strings the operator reads', () => {
    const cases: [unknown, string, string][] = [
      [new PackagesNotFoundError(['nope']), 'packages_not_found', 'not_found'],
      [new GitRefNotFoundError('https://example.org/repo', 'v9'), 'git_ref_not_found', 'not_found'],
      [new ChannelUnavailableError('https://example.org/c.tar.gz', 404), 'channel_unavailable', 'nix_failure'],
      [new NixBuildError(['broken'], ''), 'nix_build_failed', 'nix_failure'],
      [new NixEvaluationError('syntax error', ''), 'nix_evaluation_failed', 'nix_failure'],
      [new NixTimeoutError(5, 'realise'), 'nix_timeout', 'timeout'],
      [new BuildStorageError('disk full'), 'storage_failure', 'storage_failure'],
      [new StorageUnavailableError('no bucket'), 'storage_failure', 'storage_failure'],
      [
        new InsufficientSpaceError({ volume: 'nix_store', path: '/nix/store', freeBytes: 1, totalBytes: 10, reserveBytes: 2 }),
        'insufficient_space',
        'storage_failure',
      ],
      [new PushError('denied'), 'push_failure', 'push_failure'],
      [new UsageError('--push-scheme must be http or https'), 'usage', 'usage'],
      [new ConfigError('NIX_TIMEOUT', 'not a number'), 'usage', 'usage'],
      [new InvalidNameError('A//b', 'empty component'), 'usage', 'usage'],
      [new InvalidTagError('-x'), 'usage', 'usage'],
      [new ClosureTooLargeError(3 * 1024 ** 3, 2 * 1024 ** 3), 'closure_too_large', 'usage'],
      [new Error('interrupted by SIGTERM'), 'internal', 'error'],
    ];
    for (const [error, kind, outcome] of cases) {
      const failure = classifyFailure(error);
      assert.deepEqual([failure.kind, failure.outcome, failure.message], [kind, outcome, (error as Error).message], String(error));
      assert.ok(FAILURE_OUTCOMES.includes(failure.outcome));
    }
  });

  it('carry the facts each kind needs, and summaries name packages only where the failure does', () => {
    assert.deepEqual(classifyFailure(new NixTimeoutError(5, 'evaluate')), {
      kind: 'nix_timeout',
      outcome: 'timeout',
      message: 'Nix did not finish evaluate within 5 s',
      seconds: 5,
      phase: 'evaluate',
    });
    assert.deepEqual(summarizeFailure(classifyFailure(new PackagesNotFoundError(['a', 'b']))), {
      outcome: 'not_found',
      message: 'packages not found: a, b',
      packages: ['a', 'b'],
    });
    assert.deepEqual(summarizeFailure(classifyFailure(new PushError('denied'))), { outcome: 'push_failure', message: 'denied' });
  });
});
