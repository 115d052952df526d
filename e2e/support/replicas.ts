// Several `nixery serve` processes on one storage (a shared directory or one GCS bucket), as
// replicas of a NixeryInstance are: helpers to spread requests over them and add up their metrics.
import { within } from '@nixery/test-support';
import { metricValue } from './metrics.ts';
import type { RegistryProcess } from './registry.ts';

export interface SpreadAnswers {
  statuses: number[];
  digests: (string | null)[];
}

/** `count` concurrent manifest GETs of `image` (name:tag), round-robin over the replicas. */
export async function coldRequests(replicas: RegistryProcess[], image: string, count: number, boundMs: number): Promise<SpreadAnswers> {
  const [name, tag] = image.split(':') as [string, string];
  const answers = await within(
    boundMs,
    `${count} concurrent requests for ${image}`,
    Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const response = await fetch(`${replicas[i % replicas.length]!.url}/v2/${name}/manifests/${tag}`, {
          headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
        });
        await response.arrayBuffer();
        return { status: response.status, digest: response.headers.get('docker-content-digest') };
      }),
    ),
  );
  return { statuses: answers.map((a) => a.status), digests: answers.map((a) => a.digest) };
}

/** A metric's sample summed over the replicas. */
export async function metricSum(replicas: RegistryProcess[], name: string, labels: Record<string, string> = {}): Promise<number> {
  const values = await Promise.all(replicas.map((r) => metricValue(r.url, name, labels)));
  return values.reduce((a, b) => a + b, 0);
}
