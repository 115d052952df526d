// What a layer is made of, in a form that can be posted to the tar thread, and
// the entries the tar thread reads for it. Loaded by the tar thread: it imports
// only the thread's side (the event loop's is layer-tar.ts and its callers).

import { customisationEntries } from './customisation-entries.ts';
import type { LayerEntry } from './entry.ts';
import { storeEntries } from './store-entries.ts';

export type LayerSpec =
  /** Store paths, canonical (sorted, unique, validated), and the directory the store is read under. */
  | { kind: 'store-paths'; paths: string[]; root: string }
  /** The customisation layer: contents in priority order, closure canonical. */
  | { kind: 'customisation'; contents: string[]; closure: string[]; root: string };

export function layerEntries(spec: LayerSpec): Generator<LayerEntry> {
  switch (spec.kind) {
    case 'store-paths':
      return storeEntries(spec.paths, spec.root);
    case 'customisation':
      return customisationEntries(spec.contents, spec.closure, spec.root);
  }
}
