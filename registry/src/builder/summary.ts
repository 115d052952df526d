// The compact form of a build's outcome, small enough for a Kubernetes termination message
// (4096 bytes): what the operator copies into a NixImage's status.
import type { Failure, FailureOutcome } from './outcome.ts';
import type { BuildResult, IndexBuildResult } from './result.ts';

export type { FailureOutcome } from './outcome.ts';

export interface BuildSummary {
  digest?: string;
  mediaType?: string;
  /** Bytes of the config and every layer, compressed. */
  size?: number;
  layers?: number;
  /** The SBOM's referrer manifest of `digest` (GET /v2/<name>/referrers/<digest> lists it). */
  sbomDigest?: string;
  /** A multi-platform build: `digest` is the image index, and these the images it names. */
  platforms?: PlatformSummary[];
  pushed?: string;
  error?: BuildFailureSummary;
}

/** One platform's image in an image index: its manifest's digest, and that manifest's SBOM referrer. */
export interface PlatformSummary {
  platform: string;
  digest: string;
  sbomDigest?: string;
}

/** A failed build: how it failed (builder/outcome.ts), the error's message, and the packages it names, if any. */
export interface BuildFailureSummary {
  outcome: FailureOutcome;
  message: string;
  packages?: string[];
}

export const TERMINATION_MESSAGE_LIMIT = 4096;

export function summarizeResult(result: BuildResult, pushed?: string): BuildSummary {
  return {
    digest: result.digest,
    mediaType: result.mediaType,
    size: result.config.size + result.layers.reduce((sum, l) => sum + l.size, 0),
    layers: result.layers.length,
    sbomDigest: result.sbomDigest,
    ...(pushed ? { pushed } : {}),
  };
}

/**
 * A multi-platform build: the index's digest and media type, the compressed bytes of every config
 * and layer it names (each blob once) and their layers, and each platform's image.
 */
export function summarizeIndexResult(result: IndexBuildResult, pushed?: string): BuildSummary {
  const blobs = new Map<string, number>();
  for (const image of result.platforms) for (const blob of [image.config, ...image.layers]) blobs.set(blob.digest, blob.size);
  return {
    digest: result.digest,
    mediaType: result.mediaType,
    size: [...blobs.values()].reduce((sum, size) => sum + size, 0),
    layers: result.platforms.reduce((sum, image) => sum + image.layers.length, 0),
    platforms: result.platforms.map((image) => ({ platform: image.platform, digest: image.digest, sbomDigest: image.sbomDigest })),
    ...(pushed ? { pushed } : {}),
  };
}

export function summarizeFailure(failure: Failure): BuildFailureSummary {
  return { outcome: failure.outcome, message: failure.message, ...('packages' in failure ? { packages: failure.packages } : {}) };
}

/** Serialises a summary within the limit, shortening the error message (and then the package list) if needed. */
export function renderSummary(summary: BuildSummary): string {
  let text = JSON.stringify(summary);
  if (text.length <= TERMINATION_MESSAGE_LIMIT || !summary.error) return text.slice(0, TERMINATION_MESSAGE_LIMIT);
  const error = { ...summary.error };
  const excess = text.length - TERMINATION_MESSAGE_LIMIT;
  error.message = error.message.slice(0, Math.max(0, error.message.length - excess - 3)) + '...';
  text = JSON.stringify({ ...summary, error });
  if (text.length > TERMINATION_MESSAGE_LIMIT && error.packages) {
    const { packages: _dropped, ...rest } = error;
    text = JSON.stringify({ ...summary, error: rest });
  }
  return text.slice(0, TERMINATION_MESSAGE_LIMIT);
}
