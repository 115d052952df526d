// A NixImage's status from what was observed: the instance, a conflicting claim, the build Job
// and the builder's summary from the pod's termination message. Pure; every rule is a test.
import type { V1Job } from '@kubernetes/client-node';
import type { BuildSummary, FailureOutcome } from '@nixery/registry/operator-api';
import { isConditionTrue, setCondition } from '../api/conditions.ts';
import type { Condition, NixeryInstance, NixImage, NixImageStatus } from '../api/types.ts';
import { instanceEndpoint } from '../instance/desired.ts';
import { repositoryName } from './desired-job.ts';

export interface ImageObservation {
  instance?: NixeryInstance;
  /** The NixImage that claimed the same <name>:<tag> on the instance first. */
  conflictWith?: string;
  jobName: string;
  /** A Job holds the build Job's name but this NixImage does not control it: it is not `job`. */
  foreignJob?: boolean;
  job?: V1Job;
  summary?: BuildSummary;
  /** Whether the registry serves the summary's digest under the repository and tag; Ready needs it. */
  verification?: { confirmed: true } | { confirmed: false; message: string };
}

export type JobState = 'none' | 'running' | 'succeeded' | 'failed';

export function jobState(job: V1Job | undefined): JobState {
  if (!job) return 'none';
  const conditions = job.status?.conditions ?? [];
  if (conditions.some((c) => c.type === 'Complete' && c.status === 'True')) return 'succeeded';
  if (conditions.some((c) => c.type === 'Failed' && c.status === 'True')) return 'failed';
  return 'running';
}

/** The condition reason for each way a build fails: the builder's one classification, typed. */
const FAILURE_REASONS: Record<FailureOutcome, string> = {
  not_found: 'PackagesNotFound',
  nix_failure: 'NixBuildFailed',
  timeout: 'NixTimeout',
  push_failure: 'PushFailed',
  storage_failure: 'StorageFailed',
  usage: 'InvalidSpec',
  error: 'BuildFailed',
};

type Conditions = Record<'Ready' | 'Building' | 'Failed' | 'Conflict', Omit<Condition, 'type' | 'observedGeneration'>>;

export function computeImageStatus(image: NixImage, observed: ImageObservation, now: string): NixImageStatus {
  const generation = image.metadata.generation ?? 0;
  const previous = image.status ?? {};
  const state = jobState(observed.job);
  const base: NixImageStatus = { ...previous, observedGeneration: generation };
  const no = (reason: string, message = '') => ({ status: 'False' as const, reason, message });
  const yes = (reason: string, message = '') => ({ status: 'True' as const, reason, message });
  let c: Conditions;

  if (!observed.instance) {
    const message = `NixeryInstance ${image.spec.instanceRef.name} does not exist in namespace ${image.metadata.namespace}`;
    c = { Ready: no('InstanceNotFound', message), Building: no('InstanceNotFound'), Failed: no('InstanceNotFound'), Conflict: no('NoConflict') };
  } else if (observed.conflictWith) {
    const message = `NixImage ${observed.conflictWith} already declares ${repositoryName(image)}:${image.spec.tag} on this instance`;
    c = { Ready: no('Conflict', message), Building: no('Conflict'), Failed: no('Conflict'), Conflict: yes('TagClaimed', message) };
  } else if (observed.foreignJob && !(previous.jobName === observed.jobName && isConditionTrue(previous.conditions, 'Ready'))) {
    const message = `Job ${observed.jobName} is not controlled by NixImage ${image.metadata.name}: its result is not believed; delete it to build`;
    base.jobName = observed.jobName;
    c = { Ready: no('JobNotOwned', message), Building: no('JobNotOwned'), Failed: yes('JobNotOwned', message), Conflict: no('NoConflict') };
  } else if (state === 'succeeded' && observed.summary?.digest && !observed.verification?.confirmed) {
    // What the pod wrote is not what pods pull until the registry says so: no digest from it.
    const unconfirmed = observed.verification && !observed.verification.confirmed ? observed.verification.message : 'not asked yet';
    const message = `the registry has not confirmed ${observed.summary.digest} for ${repositoryName(image)}:${image.spec.tag}: ${unconfirmed}`;
    base.jobName = observed.jobName;
    c = { Ready: no('DigestUnverified', message), Building: no('DigestUnverified'), Failed: no('DigestUnverified'), Conflict: no('NoConflict') };
  } else if (state === 'succeeded' && observed.summary?.digest) {
    const s = observed.summary;
    const digest = s.digest!;
    base.digest = digest;
    base.image = `${instanceEndpoint(observed.instance)}/${repositoryName(image)}@${digest}`;
    // Another build's SBOM must not stay beside this digest (a registry before SBOMs sends none).
    if (s.sbomDigest !== undefined) base.sbomDigest = s.sbomDigest;
    else delete base.sbomDigest;
    // An index's images; a single image's build must not keep the platforms of an earlier one.
    if (s.platforms?.length) base.platforms = s.platforms.map((p) => ({ platform: p.platform, digest: p.digest, ...(p.sbomDigest ? { sbomDigest: p.sbomDigest } : {}) }));
    else delete base.platforms;
    if (s.layers !== undefined) base.layers = s.layers;
    if (s.size !== undefined) base.size = s.size;
    base.jobName = observed.jobName;
    base.lastBuildTime = toIso(observed.job?.status?.completionTime) ?? now;
    c = { Ready: yes('Built', `pull ${base.image}`), Building: no('Built'), Failed: no('Built'), Conflict: no('NoConflict') };
  } else if (state === 'failed' || (state === 'succeeded' && !observed.summary?.digest)) {
    const error = observed.summary?.error;
    // The summary is JSON from a Job's termination message, possibly written by another registry version.
    const reason = error ? (FAILURE_REASONS[error.outcome] ?? 'BuildFailed') : 'BuildFailed';
    const message = error?.message ?? `build Job ${observed.jobName} failed without a result; see its logs`;
    base.jobName = observed.jobName;
    c = { Ready: no(reason, message), Building: no(reason), Failed: yes(reason, message), Conflict: no('NoConflict') };
  } else if (state === 'none' && previous.jobName === observed.jobName && isConditionTrue(previous.conditions, 'Ready')) {
    // The Job of this very build finished and was cleaned up: the result in status stands.
    return { ...previous, observedGeneration: generation };
  } else {
    const message = `build Job ${observed.jobName} ${state === 'running' ? 'is running' : 'is being created'}`;
    base.jobName = observed.jobName;
    // A scheduled rebuild of an unchanged spec keeps serving the image it has.
    const keepsReady = previous.observedGeneration === generation && isConditionTrue(previous.conditions, 'Ready');
    c = {
      Ready: keepsReady ? yes('Built', `pull ${previous.image}; a rebuild is running`) : no('Building', message),
      Building: yes(state === 'running' ? 'JobRunning' : 'JobPending', message),
      Failed: no('Building'),
      Conflict: no('NoConflict'),
    };
  }

  let conditions = previous.conditions;
  for (const type of ['Ready', 'Building', 'Failed', 'Conflict'] as const) {
    conditions = setCondition(conditions, { type, ...c[type], observedGeneration: generation }, now);
  }
  return { ...base, conditions: conditions ?? [] };
}

function toIso(value: Date | string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return value instanceof Date ? value.toISOString() : value;
}
