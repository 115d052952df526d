// Messages between the event loop (layer-tar.ts) and the tar thread (tar-thread.ts).

import type { PackErrorData } from './errors.ts';
import type { LayerSpec } from './layer-spec.ts';

export type ToTarThread =
  /** Starts a layer; its blocks are `blockSize` slices of `memory`, filled only when granted; `crc32`: summarise the CRC-32 too. */
  | { op: 'start'; id: number; spec: LayerSpec; memory: SharedArrayBuffer; blockSize: number; crc32: boolean }
  /** These slots are free: fill them, in this order. */
  | { op: 'fill'; id: number; slots: number[] }
  /** The layer is abandoned: close its files and forget it. */
  | { op: 'stop'; id: number };

/** What went in: the SHA-256, CRC-32 and size of the whole tar. */
export interface TarSummary {
  /** `sha256:<hex>` */
  digest: string;
  /** The CRC-32 when the layer was started with `crc32`, else 0. */
  crc: number;
  size: number;
}

export type FromTarThread =
  /** Slot `slot` holds the next `length` bytes of the tar; the last block carries the summary. */
  | { op: 'block'; id: number; slot: number; length: number; summary?: TarSummary }
  | { op: 'error'; id: number; error: PackErrorData };
