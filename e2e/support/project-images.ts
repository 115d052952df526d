// The project's own container images, as users get them: the OCI archives that
// scripts/build-images.sh writes (scripts/test.sh builds them into .images/ before the suites
// run; NIXERY_IMAGES_DIR names another folder), pushed with skopeo to a registry the cluster
// pulls from. For the test cluster that is Debian's docker-registry on this machine, so its node
// agent pulls and runs them like any other image; for an existing cluster, the registry named by
// NIXERY_E2E_IMAGE_PREFIX, else the published images the chart names by default.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, runOk } from '@nixery/test-support';
import { startDockerRegistry, type DockerRegistryProcess } from './docker-registry.ts';
import type { ClusterMode } from './cluster-under-test.ts';

export const IMAGES_DIR = process.env.NIXERY_IMAGES_DIR ?? path.join(REPO_ROOT, '.images');
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

export interface ProjectImages {
  /** repository and tag of the registry image (it also runs NixImage builds) */
  registry: { repository: string; tag: string };
  operator: { repository: string; tag: string };
  /** the chart values that install these images */
  chartValues: string[];
  stop(): Promise<void>;
}

/** The two archives; a clear error when they have not been built. */
export function projectImageArchives(): { registry: string; operator: string } {
  const archives = { registry: path.join(IMAGES_DIR, 'nixery.oci.tar'), operator: path.join(IMAGES_DIR, 'operator.oci.tar') };
  for (const archive of Object.values(archives)) {
    if (!fs.existsSync(archive)) {
      throw new Error(`${archive} is missing: build the project's images with \`bash scripts/build-images.sh ${IMAGES_DIR}\` (scripts/test.sh does before the suites)`);
    }
  }
  return archives;
}

async function push(archive: string, reference: string, tlsVerify: boolean): Promise<void> {
  await runOk('skopeo', ['copy', '--quiet', `--dest-tls-verify=${tlsVerify}`, `oci-archive:${archive}`, `docker://${reference}`], { timeoutMs: 300_000 });
}

export async function projectImages(mode: ClusterMode): Promise<ProjectImages> {
  let registry: DockerRegistryProcess | undefined;
  let prefix: string;
  if (mode === 'test-cluster') {
    registry = await startDockerRegistry();
    prefix = `${registry.host}/nixery-operator`;
  } else if (process.env.NIXERY_E2E_IMAGE_PREFIX) {
    prefix = process.env.NIXERY_E2E_IMAGE_PREFIX.replace(/\/+$/, '');
  } else {
    prefix = 'ghcr.io/nixery-operator';
  }
  const images: ProjectImages = {
    registry: { repository: `${prefix}/nixery`, tag: VERSION },
    operator: { repository: `${prefix}/operator`, tag: VERSION },
    chartValues: [],
    stop: async () => {
      await registry?.stop();
    },
  };
  images.chartValues = [
    '--set', `image.repository=${images.operator.repository}`,
    '--set', `image.tag=${images.operator.tag}`,
    '--set', `instance.image.repository=${images.registry.repository}`,
    '--set', `instance.image.tag=${images.registry.tag}`,
  ];
  if (mode === 'existing' && !process.env.NIXERY_E2E_IMAGE_PREFIX) return images;
  try {
    const archives = projectImageArchives();
    await push(archives.registry, `${images.registry.repository}:${images.registry.tag}`, mode !== 'test-cluster');
    await push(archives.operator, `${images.operator.repository}:${images.operator.tag}`, mode !== 'test-cluster');
  } catch (error) {
    await images.stop();
    throw error;
  }
  return images;
}
