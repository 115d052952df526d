// Layer packing: store paths and the customisation layer as deterministic
// tars, then gzip or zstd with the diff ID computed on the way.

export { storePathsTar } from './store-tar.ts';
export type { StoreTarOptions } from './store-tar.ts';
export { customisationTar } from './customisation.ts';
export type { CustomisationOptions, CustomisationSpec } from './customisation.ts';
export { compressLayer, LAYER_COMPRESSIONS } from './compress.ts';
export { LayerTar, startTarThread, TarThreadError } from './layer-tar.ts';
export type { CompressedLayer, CompressOptions, LayerCompression } from './compress.ts';
export {
  InvalidStorePathError,
  NonUtf8NameError,
  PackError,
  StoreFileChangedError,
  StoreReadError,
  UnsupportedFileTypeError,
} from './errors.ts';
