// Artifact manifests that refer to an image (OCI 1.1): an image manifest whose `subject` is the
// image's manifest, whose `artifactType` says what it is, with the empty config the image spec's
// artifact guidance prescribes and the artifact itself as its one layer. Pure and byte-stable.
import type { Descriptor } from './image.ts';
import { MediaType } from './media-types.ts';

/** The empty config's bytes: `{}`. */
export const EMPTY_JSON = Buffer.from('{}');

/** The image spec's empty descriptor, with its two bytes inline (`data`) as the spec's example has them. */
export const EMPTY_DESCRIPTOR = {
  mediaType: MediaType.ociEmpty,
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
  size: 2,
  data: EMPTY_JSON.toString('base64'),
} as const;

export interface ReferrerInput {
  artifactType: string;
  /** The artifact: one blob, with its own media type. */
  blob: Descriptor;
  /** The manifest it refers to, as clients see it (media type, digest, size). */
  subject: Descriptor;
}

export function renderReferrer(input: ReferrerInput): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: input.artifactType,
      config: EMPTY_DESCRIPTOR,
      layers: [descriptor(input.blob)],
      subject: descriptor(input.subject),
    }),
  );
}

function descriptor(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}
