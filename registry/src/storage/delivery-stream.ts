// A blob delivery's bytes as a stream, for readers inside the registry (the push client, the gzip
// variant of a zstd image): a stream delivery is opened, a redirect (object storage's signed URL)
// is read as a client would read it.
import { Readable } from 'node:stream';
import type { BlobDelivery } from './backend.ts';

/** The signed URL answered with no body to read. */
export class DeliveryUrlError extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`reading it from storage failed with HTTP ${status}`);
    this.name = 'DeliveryUrlError';
    this.status = status;
  }
}

/** Throws DeliveryUrlError for a non-2xx answer; fetch's own errors (the network) pass through as they are. */
export async function deliveryStream(delivery: BlobDelivery): Promise<Readable> {
  if (delivery.kind === 'stream') return delivery.open();
  const response = await fetch(delivery.url);
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new DeliveryUrlError(response.status);
  }
  return Readable.fromWeb(response.body as never);
}
