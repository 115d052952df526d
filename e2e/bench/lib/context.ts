// What every suite gets: the mode and its sizes, a work directory, and a logger.
import path from 'node:path';
import { REPO_ROOT } from '@nixery/test-support';

/** NIXERY_BENCH_REGISTRY_BIN runs the registry from elsewhere, e.g. a patched copy, to measure a change. */
export const NIXERY_BIN = process.env.NIXERY_BENCH_REGISTRY_BIN ?? path.join(REPO_ROOT, 'registry/bin/nixery.js');
export const OPERATOR_BIN = path.join(REPO_ROOT, 'operator/bin/nixery-operator.js');
export const PACK_WORKER = path.join(REPO_ROOT, 'e2e/bench/pack-worker.ts');

export interface Sizes {
  /** The store-like corpus for packing and cold builds. */
  corpusBytes: number;
  /** The single layer whose packing peak RSS is measured. */
  bigLayerBytes: number;
  /** The single store path (Python and shared libraries) packed as one layer against pigz. */
  bigPathBytes: number;
  /** Warm serving: the blob wrk downloads. */
  blobBytes: number;
  /** The image pulled concurrently. */
  pullImageBytes: number;
  pulls: number;
  coldRequests: number;
  nixImages: number;
  /** Seconds of each wrk run. */
  wrkSeconds: number;
  iterations: number;
  /** --resync-seconds of the operator. */
  resyncSeconds: number;
  /** Files in the nixpkgs-sized local package source (a nixpkgs checkout has about 40,000). */
  sourceFiles: number;
  /** Blobs and pushed tags of the storage garbage collection passes over (suites/storage.ts). */
  gcBlobs: number;
  gcTags: number;
}

export const FULL: Sizes = {
  corpusBytes: 320_000_000,
  bigLayerBytes: 1 << 30,
  bigPathBytes: 480_000_000,
  blobBytes: 100 << 20,
  pullImageBytes: 16 << 20,
  pulls: 50,
  coldRequests: 20,
  nixImages: 500,
  wrkSeconds: 10,
  iterations: 3,
  resyncSeconds: 15,
  sourceFiles: 40_000,
  gcBlobs: 100_000,
  gcTags: 10_000,
};

export const SMOKE: Sizes = {
  corpusBytes: 16_000_000,
  bigLayerBytes: 48 << 20,
  bigPathBytes: 24_000_000,
  blobBytes: 8 << 20,
  pullImageBytes: 2 << 20,
  pulls: 8,
  coldRequests: 20,
  nixImages: 20,
  wrkSeconds: 1,
  iterations: 1,
  resyncSeconds: 3,
  sourceFiles: 2_000,
  gcBlobs: 2_000,
  gcTags: 200,
};

export interface Context {
  smoke: boolean;
  sizes: Sizes;
  /** Generated data kept between runs (corpora are deterministic). */
  cacheDir: string;
  /** This run's scratch directory, removed at the end. */
  workDir: string;
  log(message: string): void;
  /** Tool versions, collected for the report. */
  tools: Record<string, string>;
}

export const MB = 1_000_000;
