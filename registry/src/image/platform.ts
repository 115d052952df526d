// The platforms an image name may be built for (NIXERY_PLATFORMS, `nixery build --platforms`,
// NixImage spec.platforms), as the OCI image index names them: `os/architecture`. Pure.
import { AMD64, ARM64, type Architecture } from './name.ts';

export const PLATFORMS = {
  'linux/amd64': AMD64,
  'linux/arm64': ARM64,
} as const satisfies Record<string, Architecture>;

export type Platform = keyof typeof PLATFORMS;

/** Today's behaviour: one image, for amd64. */
export const DEFAULT_PLATFORMS: readonly Platform[] = ['linux/amd64'];

export class InvalidPlatformsError extends Error {
  readonly code = 'PLATFORMS_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidPlatformsError';
  }
}

export function isPlatform(value: string): value is Platform {
  return Object.hasOwn(PLATFORMS, value);
}

export function platformOf(arch: Architecture): Platform {
  return `linux/${arch.imageArch}` as const;
}

/**
 * A comma-separated list of platforms (`linux/amd64,linux/arm64`), whitespace around entries
 * ignored, in the order given: the first is what a client that reads no image index is served.
 * Throws InvalidPlatformsError for an empty list, an unknown platform or one named twice.
 */
export function parsePlatforms(raw: string): Platform[] {
  const entries = raw.split(',').map((e) => e.trim());
  const known = Object.keys(PLATFORMS).join(', ');
  const platforms: Platform[] = [];
  for (const entry of entries) {
    if (entry === '') throw new InvalidPlatformsError(`expected comma-separated platforms (${known}), but found an empty entry`);
    if (!isPlatform(entry)) throw new InvalidPlatformsError(`unknown platform ${JSON.stringify(entry)}: expected ${known}`);
    if (platforms.includes(entry)) throw new InvalidPlatformsError(`platform ${entry} is named twice`);
    platforms.push(entry);
  }
  return platforms;
}
