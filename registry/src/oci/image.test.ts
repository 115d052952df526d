import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { negotiateIndexFormat, negotiateManifestFormat, renderConfig, renderManifest, sha256Digest } from './image.ts';
import { MediaType } from './media-types.ts';

const layers = [
  { digest: sha256Digest('layer-1.tar.gz'), diffId: sha256Digest('layer-1.tar'), size: 14 },
  { digest: sha256Digest('layer-2.tar.gz'), diffId: sha256Digest('layer-2.tar'), size: 20 },
];

describe('image config', () => {
  it('lists diff ids in layer order and carries env and cmd', () => {
    const config = JSON.parse(renderConfig({ architecture: 'arm64', layers, cmd: ['bash'], env: ['A=1'] }).toString());
    assert.deepEqual(config, {
      architecture: 'arm64',
      os: 'linux',
      config: { Env: ['A=1'], Cmd: ['bash'] },
      rootfs: { type: 'layers', diff_ids: [layers[0]!.diffId, layers[1]!.diffId] },
    });
  });

  it('omits Cmd when there is none, and renders the same bytes every time', () => {
    const a = renderConfig({ architecture: 'amd64', layers, env: [] });
    const b = renderConfig({ architecture: 'amd64', layers, env: [] });
    assert.equal(sha256Digest(a), sha256Digest(b));
    assert.equal('Cmd' in JSON.parse(a.toString()).config, false);
  });
});

describe('manifests', () => {
  const config = { digest: sha256Digest('{}'), size: 2 };

  it('renders Docker schema 2 with Docker media types', () => {
    const m = JSON.parse(renderManifest('docker', config, layers).toString());
    assert.equal(m.schemaVersion, 2);
    assert.equal(m.mediaType, MediaType.dockerManifest);
    assert.deepEqual(m.config, { mediaType: MediaType.dockerConfig, ...config });
    assert.deepEqual(m.layers.map((l: { mediaType: string }) => l.mediaType), [MediaType.dockerLayer, MediaType.dockerLayer]);
    assert.deepEqual(m.layers.map((l: { digest: string; size: number }) => [l.digest, l.size]), layers.map((l) => [l.digest, l.size]));
  });

  it('renders OCI with OCI media types and the same blobs', () => {
    const m = JSON.parse(renderManifest('oci', config, layers).toString());
    assert.equal(m.mediaType, MediaType.ociManifest);
    assert.equal(m.config.mediaType, MediaType.ociConfig);
    assert.equal(m.config.digest, config.digest);
    assert.deepEqual(m.layers.map((l: { mediaType: string }) => l.mediaType), [MediaType.ociLayer, MediaType.ociLayer]);
  });

  it('names zstd layers tar+zstd in an OCI manifest, and has no Docker schema 2 rendering of them', () => {
    const m = JSON.parse(renderManifest('oci', config, layers, 'zstd').toString());
    assert.deepEqual(m.layers.map((l: { mediaType: string }) => l.mediaType), [MediaType.ociLayerZstd, MediaType.ociLayerZstd]);
    assert.equal(MediaType.ociLayerZstd, 'application/vnd.oci.image.layer.v1.tar+zstd');
    assert.throws(() => renderManifest('docker', config, layers, 'zstd'), RangeError);
  });
});

describe('manifest content negotiation', () => {
  it('serves Docker schema 2 when the client states no preference', () => {
    for (const accept of [undefined, '', '*/*', 'application/json', 'application/vnd.docker.distribution.manifest.v1+prettyjws']) {
      assert.equal(negotiateManifestFormat(accept), 'docker', String(accept));
    }
  });

  it('follows the order of the Accept header among supported types', () => {
    // skopeo/containers-image lists OCI first; Docker and containerd list schema 2 first.
    assert.equal(negotiateManifestFormat(`${MediaType.ociManifest}, ${MediaType.dockerManifest}`), 'oci');
    assert.equal(negotiateManifestFormat(`${MediaType.dockerManifest}, ${MediaType.ociManifest}, */*`), 'docker');
    assert.equal(negotiateManifestFormat([MediaType.ociIndex, MediaType.ociManifest]), 'oci');
  });

  it('honours q-values and q=0', () => {
    assert.equal(negotiateManifestFormat(`${MediaType.dockerManifest};q=0.5, ${MediaType.ociManifest}`), 'oci');
    assert.equal(negotiateManifestFormat(`${MediaType.ociManifest};q=0`), 'docker');
  });

  describe('with zstd layers', () => {
    it('serves the OCI manifest to a client that accepts it at all, even listed after Docker schema 2 (containerd)', () => {
      assert.equal(negotiateManifestFormat(`${MediaType.dockerManifest}, ${MediaType.dockerManifestList}, ${MediaType.ociManifest}, ${MediaType.ociIndex}, */*`, 'zstd'), 'oci');
      assert.equal(negotiateManifestFormat(`${MediaType.dockerManifest}, ${MediaType.ociManifest};q=0.1`, 'zstd'), 'oci');
      assert.equal(negotiateManifestFormat(`${MediaType.ociManifest}, ${MediaType.dockerManifest}`, 'zstd'), 'oci');
    });

    it('serves Docker schema 2 (the gzip variant) to a client that names only it, no Accept, or refuses OCI with q=0', () => {
      for (const accept of [undefined, '', '*/*', MediaType.dockerManifest, `${MediaType.dockerManifest}, ${MediaType.ociManifest};q=0`]) {
        assert.equal(negotiateManifestFormat(accept, 'zstd'), 'docker', String(accept));
      }
    });

    it('leaves gzip negotiation as it was', () => {
      assert.equal(negotiateManifestFormat(`${MediaType.dockerManifest}, ${MediaType.ociManifest}`, 'gzip'), 'docker');
    });
  });
});

describe('image index content negotiation', () => {
  it('finds no index for a client that names none: no Accept, wildcards, image manifests only', () => {
    for (const accept of [undefined, '', '*/*', 'application/json', `${MediaType.dockerManifest}, ${MediaType.ociManifest}`]) {
      assert.equal(negotiateIndexFormat(accept), undefined, String(accept));
    }
  });

  it('gives the OCI image index to a client that reads it, Docker\'s manifest list to one that reads only Docker\'s types', () => {
    // What skopeo (containers/image) sends, the list before the index.
    const skopeo = [MediaType.ociManifest, MediaType.dockerManifest, 'application/vnd.docker.distribution.manifest.v1+prettyjws', MediaType.dockerManifestList, MediaType.ociIndex].join(', ');
    assert.equal(negotiateIndexFormat(skopeo), 'oci');
    // containerd's order: the manifest list, the v2 manifest, the OCI index, the OCI manifest, */*.
    assert.equal(negotiateIndexFormat([MediaType.dockerManifestList, MediaType.dockerManifest, MediaType.ociIndex, MediaType.ociManifest, '*/*']), 'oci');
    assert.equal(negotiateIndexFormat(`${MediaType.ociIndex}, ${MediaType.ociManifest}`), 'oci');
    assert.equal(negotiateIndexFormat(`${MediaType.dockerManifest}, ${MediaType.dockerManifestList}`), 'docker');
  });

  it('honours q-values and q=0 between the two', () => {
    assert.equal(negotiateIndexFormat(`${MediaType.ociIndex};q=0.5, ${MediaType.dockerManifestList}`), 'docker');
    assert.equal(negotiateIndexFormat(`${MediaType.dockerManifestList};q=0.5, ${MediaType.ociIndex}`), 'oci');
    assert.equal(negotiateIndexFormat(`${MediaType.ociIndex};q=0, ${MediaType.dockerManifestList}`), 'docker');
    assert.equal(negotiateIndexFormat(`${MediaType.ociIndex};q=0`), undefined);
  });
});

describe('declared image config', () => {
  it('writes entrypoint, cmd, env, working dir, user, ports and labels', () => {
    const config = JSON.parse(
      renderConfig({
        architecture: 'amd64',
        layers,
        cmd: ['bash'],
        env: ['PATH=/bin', 'SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt'],
        overrides: {
          entrypoint: ['/bin/server'],
          cmd: ['--port', '8080'],
          env: [{ name: 'PATH', value: '/opt/bin:/bin' }, { name: 'MODE', value: 'prod' }],
          workingDir: '/srv',
          user: '1000:1000',
          exposedPorts: ['8080', '53/udp'],
          labels: { b: '2', a: '1' },
        },
      }).toString(),
    ).config;
    assert.deepEqual(config, {
      Env: ['SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt', 'PATH=/opt/bin:/bin', 'MODE=prod'],
      Entrypoint: ['/bin/server'],
      Cmd: ['--port', '8080'],
      WorkingDir: '/srv',
      User: '1000:1000',
      ExposedPorts: { '53/udp': {}, '8080/tcp': {} },
      Labels: { a: '1', b: '2' },
    });
  });

  it('drops the default bash command when an entrypoint is declared without cmd', () => {
    const config = JSON.parse(renderConfig({ architecture: 'amd64', layers, cmd: ['bash'], env: [], overrides: { entrypoint: ['/bin/hello'] } }).toString()).config;
    assert.deepEqual(config.Entrypoint, ['/bin/hello']);
    assert.equal(config.Cmd, undefined);
  });
});
