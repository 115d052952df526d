// Which program a container image stands for: a mapped program of this repository, or an image
// pulled from a registry. Pure: the kubelet does the pulling.
import type { ImageMapping } from './types.ts';

export interface RegistryReference {
  /** `host[:port]` exactly as written in the image reference */
  registry: string;
  /** repository path below the host, e.g. `shell/hello` */
  repository: string;
  tag?: string;
  digest?: string;
}

export type ResolvedImage =
  | { kind: 'mapped'; mapping: ImageMapping }
  | { kind: 'registry'; reference: RegistryReference }
  | { kind: 'invalid'; message: string };

/**
 * Matching rule for `imageMap`, first matching entry in array order wins:
 * - an entry equal to the reference matches (`example.org/tool:v1` matches only that tag);
 * - an entry without tag or digest matches every tag and digest of that repository
 *   (`example.org/tool` matches `example.org/tool`, `example.org/tool:v2`, `example.org/tool@sha256:…`);
 * - an entry ending in `/` matches every repository below it (`example.org/` matches `example.org/a/b:c`).
 */
export function findMapping(image: string, imageMap: readonly ImageMapping[]): ImageMapping | undefined {
  return imageMap.find((entry) => {
    if (image === entry.image) return true;
    if (entry.image.endsWith('/')) return image.startsWith(entry.image);
    if (!image.startsWith(entry.image)) return false;
    const next = image[entry.image.length];
    return next === ':' || next === '@';
  });
}

/**
 * Docker's rule for the first path component: it names a registry when it contains `.` or `:`
 * or is `localhost`; otherwise the reference would mean Docker Hub, which this node cannot reach.
 */
export function parseRegistryReference(image: string): RegistryReference | undefined {
  const slash = image.indexOf('/');
  if (slash <= 0) return undefined;
  const registry = image.slice(0, slash);
  if (!(registry.includes('.') || registry.includes(':') || registry === 'localhost')) return undefined;
  let rest = image.slice(slash + 1);
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^[a-z0-9]+:[a-f0-9]{32,}$/.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!/^[\w][\w.-]{0,127}$/.test(tag)) return undefined;
  }
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(rest)) return undefined;
  const reference: RegistryReference = { registry, repository: rest };
  if (tag !== undefined) reference.tag = tag;
  if (digest !== undefined) reference.digest = digest;
  if (tag === undefined && digest === undefined) reference.tag = 'latest';
  return reference;
}

export function resolveImage(image: string, imageMap: readonly ImageMapping[]): ResolvedImage {
  const mapping = findMapping(image, imageMap);
  if (mapping) return { kind: 'mapped', mapping };
  const reference = parseRegistryReference(image);
  if (reference) return { kind: 'registry', reference };
  return {
    kind: 'invalid',
    message:
      `image "${image}" is not mapped to a local program (imageMap) and does not name a registry ` +
      '(the first path component must contain "." or ":" or be "localhost"); this node pulls only from registries it can reach on loopback',
  };
}

/** The reference's tail after the host: `shell/hello:latest` or `shell/hello@sha256:…` (digest wins). */
export function repositoryAndVersion(reference: RegistryReference): string {
  if (reference.digest) return `${reference.repository}@${reference.digest}`;
  return `${reference.repository}:${reference.tag ?? 'latest'}`;
}

/** Kubernetes' default: `Always` for `:latest` or no tag, otherwise `IfNotPresent`. */
export function defaultPullPolicy(reference: RegistryReference): 'Always' | 'IfNotPresent' {
  if (reference.digest) return 'IfNotPresent';
  return reference.tag === 'latest' ? 'Always' : 'IfNotPresent';
}
