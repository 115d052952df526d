// Which compression the registry's layers get: the instance's spec.layerCompression, which a
// NixImage's own may override for its build Job. Pure.
import type { RegistrySettings } from '@nixery/registry/operator-api';
import type { LayerCompression, NixeryInstance, NixImage } from './types.ts';

/** The registry's own default: what an unset NIXERY_LAYER_COMPRESSION means. */
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
 * The registry setting (NIXERY_LAYER_COMPRESSION), only when it differs from the registry's
 * default: instances and NixImages that leave compression alone keep the pods (and build Job
 * names) they had.
 */
export function layerCompressionSetting(compression: LayerCompression): Pick<RegistrySettings, 'layerCompression'> {
  return compression === DEFAULT_LAYER_COMPRESSION ? {} : { layerCompression: compression };
}
