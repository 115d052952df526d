// What the suites ask a registry directly: a manifest (building it, when it is ours and cold) and
// the builds counter of our /metrics.
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
// What containerd sends: docker-registry keeps the OCI manifest skopeo copied and answers a
// Docker-only Accept with 404, so the loads use a list every registry can answer.
export const ANY_MANIFEST = [DOCKER_MANIFEST, 'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json'].join(', ');

export interface Manifest {
  layers: { digest: string; size: number }[];
}

export async function getManifest(url: string, image: string): Promise<Manifest> {
  const response = await fetch(`${url}/v2/${image}/manifests/latest`, { headers: { Accept: DOCKER_MANIFEST }, signal: AbortSignal.timeout(900_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${image}:latest answered ${response.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as Manifest;
}

/** The sum of `nixery_builds_total` over its labels. */
export async function buildsTotal(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(30_000) })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^nixery_builds_total(?:\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (match) sum += Number(match[1]);
  }
  return sum;
}
