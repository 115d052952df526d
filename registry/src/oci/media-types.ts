export const MediaType = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  /** Docker schema 2 has no zstd layer type: zstd images are OCI manifests only. */
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  /** The empty JSON object `{}`: an artifact manifest's config (image spec, artifact guidance). */
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

export type ManifestFormat = 'docker' | 'oci';

export const MANIFEST_MEDIA_TYPE: Record<ManifestFormat, string> = {
  docker: MediaType.dockerManifest,
  oci: MediaType.ociManifest,
};
