import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { renderSummary, summarizeIndexResult, summarizeResult, TERMINATION_MESSAGE_LIMIT } from './summary.ts';
import type { BuildResult, IndexBuildResult } from './result.ts';

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

  it('of a multi-platform build carry the index, every platform\'s digest and SBOM, and the bytes of the blobs once each', () => {
    const image = (platform: string, digest: string, layers: { digest: string; size: number }[]) => ({
      platform,
      digest,
      sbomDigest: `${digest}-sbom`,
      config: { digest: `${digest}-config`, size: 100 },
      layers,
    });
    const result = {
      digest: 'sha256:index',
      mediaType: 'application/vnd.oci.image.index.v1+json',
      platforms: [
        image('linux/amd64', 'sha256:amd', [{ digest: 'sha256:a1', size: 10 }, { digest: 'sha256:shared', size: 5 }]),
        image('linux/arm64', 'sha256:arm', [{ digest: 'sha256:b1', size: 20 }, { digest: 'sha256:shared', size: 5 }]),
      ],
    } as unknown as IndexBuildResult;
    const summary = summarizeIndexResult(result, 'host:5000/toolbox:v1');
    assert.deepEqual(summary, {
      digest: 'sha256:index',
      mediaType: 'application/vnd.oci.image.index.v1+json',
      size: 100 + 10 + 5 + 100 + 20,
      layers: 4,
      platforms: [
        { platform: 'linux/amd64', digest: 'sha256:amd', sbomDigest: 'sha256:amd-sbom' },
        { platform: 'linux/arm64', digest: 'sha256:arm', sbomDigest: 'sha256:arm-sbom' },
      ],
      pushed: 'host:5000/toolbox:v1',
    });
    assert.deepEqual(JSON.parse(renderSummary(summary)), summary);
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
