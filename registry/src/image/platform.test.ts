import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AMD64, ARM64 } from './name.ts';
import { InvalidPlatformsError, parsePlatforms, platformOf, PLATFORMS } from './platform.ts';

describe('platforms', () => {
  it('are linux/amd64 and linux/arm64, each a Nix system and an image architecture', () => {
    assert.deepEqual(PLATFORMS, { 'linux/amd64': AMD64, 'linux/arm64': ARM64 });
    assert.equal(platformOf(ARM64), 'linux/arm64');
    assert.equal(platformOf(AMD64), 'linux/amd64');
  });

  it('parse from a comma-separated list in the order given', () => {
    assert.deepEqual(parsePlatforms('linux/amd64'), ['linux/amd64']);
    assert.deepEqual(parsePlatforms(' linux/arm64 , linux/amd64 '), ['linux/arm64', 'linux/amd64']);
  });

  it('refuse unknown platforms, empty entries and a platform named twice', () => {
    for (const [raw, message] of [
      ['linux/386', /unknown platform "linux\/386"/],
      ['amd64', /unknown platform/],
      ['Linux/AMD64', /unknown platform/],
      ['linux/arm64/v8', /unknown platform/],
      ['linux/amd64,', /empty entry/],
      ['', /empty entry/],
      ['linux/amd64,linux/amd64', /named twice/],
      ['__proto__', /unknown platform/],
    ] as const) {
      assert.throws(() => parsePlatforms(raw), (error: unknown) => error instanceof InvalidPlatformsError && message.test(error.message), raw);
    }
  });
});
