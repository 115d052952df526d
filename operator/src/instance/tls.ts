// HTTPS for a NixeryInstance: which of the three modes it uses, the names its certificate must
// carry, the objects the operator keeps for it, and what its TLS status says. Pure.
import type { KubernetesObject, V1ConfigMap } from '@kubernetes/client-node';
import { API_VERSION, type Condition, type NixeryInstance } from '../api/types.ts';
import { commonLabels, controllerReference } from '../kube/labels.ts';

export type TlsMode = 'secretName' | 'issuerRef' | 'selfSigned';

export function tlsMode(instance: NixeryInstance): TlsMode | undefined {
  const tls = instance.spec.tls;
  if (tls?.secretName) return 'secretName';
  if (tls?.issuerRef) return 'issuerRef';
  if (tls?.selfSigned) return 'selfSigned';
  return undefined;
}

/** The `kubernetes.io/tls` Secret the registry serves from: the user's, or the one the operator or cert-manager writes. */
export function servingSecretName(instance: NixeryInstance): string | undefined {
  const mode = tlsMode(instance);
  if (!mode) return undefined;
  return mode === 'secretName' ? instance.spec.tls!.secretName! : `${instance.metadata.name}-tls`;
}

/** Self-signed mode's CA (certificate and key), generated once. */
export function caSecretName(instanceName: string): string {
  return `${instanceName}-ca`;
}

/** The CA bundle as a ConfigMap (`ca.crt`): what build pods mount, and what anyone may read to trust the registry. */
export function caBundleConfigMapName(instanceName: string): string {
  return `${instanceName}-ca-bundle`;
}

/** The cert-manager Certificate of issuerRef mode. */
export function certificateName(instanceName: string): string {
  return `${instanceName}-tls`;
}

/** The names cluster DNS gives the Service, short to fully qualified. */
export function serviceDnsNames(instance: NixeryInstance): string[] {
  const { name, namespace } = instance.metadata;
  return [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`];
}

/**
 * Everything the serving certificate is for: the Service's names, the node-local path
 * (`localhost:<hostPort>` through the forwarder, which passes TLS through untouched), and the
 * Service's ClusterIP once it has one, for nodes whose runtime reaches the registry by that
 * address (a containerd `hosts.toml` host entry) because they cannot resolve cluster DNS.
 */
export function servingNames(instance: NixeryInstance, clusterIP?: string): { dns: string[]; ips: string[] } {
  const ip = clusterIP && clusterIP !== 'None' ? [clusterIP] : [];
  return { dns: [...serviceDnsNames(instance), 'localhost'], ips: ['127.0.0.1', ...ip] };
}

/**
 * The name the operator checks the certificate against, whether it connects to the ClusterIP or
 * by name: the one pods pull by (status.endpoint's host).
 */
export function verificationName(instance: NixeryInstance): string {
  return `${instance.metadata.name}.${instance.metadata.namespace}.svc.cluster.local`;
}

export const CERT_MANAGER_GROUP = 'cert-manager.io';

/** issuerRef mode's cert-manager Certificate: cert-manager writes the serving Secret from it. */
export function desiredCertificate(instance: NixeryInstance, clusterIP?: string): KubernetesObject & { spec: Record<string, unknown> } {
  const { name, namespace } = instance.metadata;
  const issuer = instance.spec.tls!.issuerRef!;
  const names = servingNames(instance, clusterIP);
  return {
    apiVersion: `${CERT_MANAGER_GROUP}/v1`,
    kind: 'Certificate',
    metadata: {
      name: certificateName(name),
      namespace,
      labels: commonLabels(name, 'tls'),
      ownerReferences: [controllerReference({ apiVersion: API_VERSION, kind: 'NixeryInstance', metadata: instance.metadata })],
    },
    spec: {
      secretName: servingSecretName(instance),
      commonName: verificationName(instance),
      dnsNames: names.dns,
      ipAddresses: names.ips,
      usages: ['server auth', 'digital signature', 'key encipherment'],
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
      issuerRef: { name: issuer.name, kind: issuer.kind ?? 'Issuer', group: issuer.group ?? CERT_MANAGER_GROUP },
    },
  };
}

/**
 * What clients should trust, from a serving Secret's data (base64, as the API holds it): its
 * `ca.crt` (cert-manager's CA and self-signed issuers, the operator's own), else the certificate
 * chain itself. Undefined when neither is there.
 */
export function caBundleOf(data: Record<string, string> | undefined): string | undefined {
  for (const key of ['ca.crt', 'tls.crt']) {
    const pem = data?.[key] ? Buffer.from(data[key], 'base64').toString('utf8') : '';
    if (pem.includes('-----BEGIN CERTIFICATE-----')) return pem;
  }
  return undefined;
}

export function desiredCaBundleConfigMap(instance: NixeryInstance, caBundle: string): V1ConfigMap {
  const { name, namespace } = instance.metadata;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: caBundleConfigMapName(name),
      namespace,
      labels: commonLabels(name, 'tls'),
      ownerReferences: [controllerReference({ apiVersion: API_VERSION, kind: 'NixeryInstance', metadata: instance.metadata })],
    },
    data: { 'ca.crt': caBundle },
  };
}

/** What the reconciler found out about the serving certificate. */
export type TlsObservation =
  | { ready: true; secretName: string; caBundle: string; message: string }
  | { ready: false; reason: TlsNotReadyReason; message: string; secretName: string };

/**
 * Why the registry cannot serve HTTPS yet. The first three need someone to act (Degraded);
 * CertificateIssuing is cert-manager at work.
 */
export type TlsNotReadyReason = 'SecretNotFound' | 'SecretInvalid' | 'CertManagerNotInstalled' | 'CertificateIssuing';

export function isTlsProblem(reason: TlsNotReadyReason): boolean {
  return reason !== 'CertificateIssuing';
}

/** The TLSReady condition for an observation (TLS on only). */
export function tlsCondition(observed: TlsObservation): Omit<Condition, 'observedGeneration' | 'lastTransitionTime'> {
  return observed.ready
    ? { type: 'TLSReady', status: 'True', reason: 'CertificateReady', message: observed.message }
    : { type: 'TLSReady', status: 'False', reason: observed.reason, message: observed.message };
}
