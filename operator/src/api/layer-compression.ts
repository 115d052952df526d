// Which compression the registry's layers get: the instance's spec.layerCompression, which a
// NixImage's own may override for its build Job. Pure.
import type { LayerCompression, NixeryInstance, NixImage } from './types.ts';

/** The variable `nixery serve` and `nixery build` read it from. */
export const LAYER_COMPRESSION_ENV = 'NIXERY_LAYER_COMPRESSION';

/** The registry's own default: what an unset variable means. */
export const DEFAULT_LAYER_COMPRESSION: LayerCompression = 'gzip';

/** The instance's choice; unset (an object stored before the CRD had the field) is the default. */
export function instanceLayerCompression(instance: NixeryInstance): LayerCompression {
  return instance.spec.layerCompression ?? DEFAULT_LAYER_COMPRESSION;
}

/** A NixImage's build: its own choice, else its instance's. */
export function imageLayerCompression(image: NixImage, instance: NixeryInstance): LayerCompression {
  return image.spec.layerCompression ?? instanceLayerCompression(instance);
}

/**
 * The variable for a container, only when it differs from the registry's default: instances and
 * NixImages that leave compression alone keep the pods (and build Job names) they had.
 */
export function layerCompressionEnv(compression: LayerCompression): { name: string; value: string }[] {
  return compression === DEFAULT_LAYER_COMPRESSION ? [] : [{ name: LAYER_COMPRESSION_ENV, value: compression }];
}

/** `containerEnv`'s list with more variables, kept in its order (by name) so a rendered object never changes order. */
export function withEnv<T extends { name: string }>(sorted: readonly T[], more: readonly T[]): T[] {
  return [...sorted, ...more].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
