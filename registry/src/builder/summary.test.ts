import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { renderSummary, summarizeResult, TERMINATION_MESSAGE_LIMIT } from './summary.ts';
import type { BuildResult } from './result.ts';

describe('build summaries for termination messages', () => {
  it('carry digest, total size, layer count, the SBOM\'s digest and the pushed reference', () => {
    const result = {
      digest: 'sha256:abc',
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { digest: 'sha256:c', size: 100, mediaType: 'x' },
      layers: [{ size: 10 }, { size: 20 }],
      sbomDigest: 'sha256:5b0',
    } as unknown as BuildResult;
    assert.deepEqual(summarizeResult(result, 'host:5000/toolbox:v1'), {
      digest: 'sha256:abc',
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      size: 130,
      layers: 2,
      sbomDigest: 'sha256:5b0',
      pushed: 'host:5000/toolbox:v1',
    });
  });

  it('stay within 4096 bytes, shortening a long error and keeping it valid JSON', () => {
    const text = renderSummary({ error: { outcome: 'nix_failure', message: 'x'.repeat(10_000), packages: ['a'] } });
    assert.ok(text.length <= TERMINATION_MESSAGE_LIMIT);
    const parsed = JSON.parse(text);
    assert.equal(parsed.error.outcome, 'nix_failure');
    assert.ok(parsed.error.message.endsWith('...'));
    assert.deepEqual(parsed.error.packages, ['a']);
  });
});
