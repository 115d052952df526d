// What a NixeryInstance author may ask of the operator beyond their own namespace's rights: the
// registry image runs with the registry's ServiceAccount and mounts, and the node-local DaemonSet
// runs on every node's network, the node-config DaemonSet writes into every node's runtime
// configuration. The operator's administrator opens these with flags; pure.
import type { NixeryInstance } from '../api/types.ts';

/** The registry image of an instance whose spec.image is unset: the CRD schema's default. */
export const DEFAULT_REGISTRY_IMAGE = 'ghcr.io/nixery-operator/nixery:0.1.0';
/** The repository of DEFAULT_REGISTRY_IMAGE. */
export const DEFAULT_REGISTRY_REPOSITORY = DEFAULT_REGISTRY_IMAGE.slice(0, DEFAULT_REGISTRY_IMAGE.lastIndexOf(':'));
/** Any tag or digest of the default image's repository. */
export const DEFAULT_REGISTRY_IMAGE_PATTERNS = [`${DEFAULT_REGISTRY_REPOSITORY}:*`, `${DEFAULT_REGISTRY_REPOSITORY}@sha256:*`];

export const ALLOW_NODE_LOCAL_FLAG = '--allow-node-local';
export const ALLOW_NODE_CONFIG_FLAG = '--allow-node-config';
export const ALLOWED_IMAGES_FLAG = '--allowed-registry-images';

export interface PrivilegeGates {
  /** Whether an instance may have the hostNetwork DaemonSet of spec.nodeLocal. */
  allowNodeLocal: boolean;
  /** Whether an instance may have spec.nodeConfig's DaemonSet, which writes into every node's runtime configuration as root. */
  allowNodeConfig?: boolean;
  /** Patterns of the images spec.image may name (parseImagePatterns). */
  allowedRegistryImages: readonly string[];
}

/** What the operator grants when no flag says otherwise: nothing beyond its own registry image. */
export const DEFAULT_GATES: PrivilegeGates = { allowNodeLocal: false, allowNodeConfig: false, allowedRegistryImages: DEFAULT_REGISTRY_IMAGE_PATTERNS };

// The characters of an image reference (name, tag, digest), and `*`.
const PATTERN = /^[A-Za-z0-9._\-/:@*]+$/;

/**
 * A comma-separated list of image patterns: `*` matches any characters but `/` (so a pattern
 * naming a repository's tags cannot match another repository below it), `**` any characters.
 * Throws with the reason on an empty list or a pattern that could never be an image reference.
 */
export function parseImagePatterns(value: string): string[] {
  const patterns = value.split(',').map((p) => p.trim()).filter(Boolean);
  if (patterns.length === 0) throw new Error('expected at least one image pattern');
  for (const pattern of patterns) {
    if (!PATTERN.test(pattern)) throw new Error(`${JSON.stringify(pattern)} is not an image pattern: only the characters of image references and *`);
    if (pattern.includes('***')) throw new Error(`${JSON.stringify(pattern)} is not an image pattern: * or **, not ***`);
    // A bare `*` or `**` opens the gate for everything: say so with the flag left off instead.
    if (/^\*+$/.test(pattern)) throw new Error(`${JSON.stringify(pattern)} allows every image; name registries or repositories`);
  }
  return patterns;
}

function patternRegExp(pattern: string): RegExp {
  const source = pattern
    .split('**')
    .map((part) => part.split('*').map((literal) => literal.replace(/[.\-/:@]/g, '\\$&')).join('[^/]*'))
    .join('.*');
  return new RegExp(`^${source}$`);
}

export function imageAllowed(image: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => patternRegExp(pattern).test(image));
}

export interface GateRefusals {
  /** spec.image is not on the allow-list: nothing runs it. */
  image?: string;
  /** spec.nodeLocal.enabled without --allow-node-local: no DaemonSet. */
  nodeLocal?: string;
  /** spec.nodeConfig.enabled without --allow-node-config: no DaemonSet. */
  nodeConfig?: string;
}

/** Why the operator refuses parts of this instance, in words for its status. */
export function gateRefusals(instance: NixeryInstance, gates: PrivilegeGates): GateRefusals {
  const refusals: GateRefusals = {};
  const image = instance.spec.image;
  if (!imageAllowed(image, gates.allowedRegistryImages)) {
    refusals.image = `spec.image ${image} is not allowed by the operator (${ALLOWED_IMAGES_FLAG}=${gates.allowedRegistryImages.join(',')}; the chart's operator.allowedRegistryImages): no registry runs it`;
  }
  if (instance.spec.nodeLocal?.enabled && !gates.allowNodeLocal) {
    refusals.nodeLocal = `spec.nodeLocal needs the operator started with ${ALLOW_NODE_LOCAL_FLAG} (the chart's operator.allowNodeLocal): it runs a hostNetwork DaemonSet on every node; none runs`;
  }
  if (instance.spec.nodeConfig?.enabled && !gates.allowNodeConfig) {
    refusals.nodeConfig = `spec.nodeConfig needs the operator started with ${ALLOW_NODE_CONFIG_FLAG} (the chart's operator.allowNodeConfig): it runs a root DaemonSet writing the container runtime's configuration on every node; none runs`;
  }
  return refusals;
}
