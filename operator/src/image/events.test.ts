import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Condition, NixImageStatus } from '../api/types.ts';
import { imageEvents } from './events.ts';

type Shape = Partial<Record<'Ready' | 'Building' | 'Failed' | 'Conflict', [Condition['status'], string, string?]>>;
const DIGEST = `sha256:${'a'.repeat(64)}`;
const OTHER = `sha256:${'b'.repeat(64)}`;

/** A status as computeImageStatus writes it: each condition as [status, reason, message]. */
function status(conditions: Shape, extra: Partial<NixImageStatus> = {}): NixImageStatus {
  return {
    jobName: 'toolbox-build-1',
    ...extra,
    conditions: Object.entries(conditions).map(([type, [s, reason, message = '']]) => ({ type, status: s, reason, message })),
  };
}
const building = (jobName = 'toolbox-build-1', reason = 'JobRunning') =>
  status({ Ready: ['False', 'Building'], Building: ['True', reason], Failed: ['False', 'Building'], Conflict: ['False', 'NoConflict'] }, { jobName });
const built = (digest = DIGEST, lastBuildTime = '2026-01-01T12:10:00Z', jobName = 'toolbox-build-1') =>
  status(
    { Ready: ['True', 'Built', `pull r/toolbox@${digest}`], Building: ['False', 'Built'], Failed: ['False', 'Built'], Conflict: ['False', 'NoConflict'] },
    { jobName, digest, image: `r/toolbox@${digest}`, lastBuildTime },
  );
const reasons = (before: NixImageStatus | undefined, after: NixImageStatus) => imageEvents(before, after).map((e) => `${e.type} ${e.reason}`);

describe('the Events of a NixImage status change', () => {
  it('says BuildStarted, naming the Job, when a build begins', () => {
    assert.deepEqual(imageEvents(undefined, building()), [{ type: 'Normal', reason: 'BuildStarted', message: 'build Job toolbox-build-1 started' }]);
  });

  it('says nothing while the same build goes from pending to running', () => {
    assert.deepEqual(imageEvents(building('toolbox-build-1', 'JobPending'), building('toolbox-build-1', 'JobRunning')), []);
  });

  it('says BuildStarted again for a new Job replacing a running one (a spec change mid-build)', () => {
    assert.deepEqual(reasons(building('toolbox-build-1'), building('toolbox-build-2')), ['Normal BuildStarted']);
  });

  it('says Pushed, naming the digest, once the registry confirmed it', () => {
    assert.deepEqual(imageEvents(building(), built()), [{ type: 'Normal', reason: 'Pushed', message: `built and pushed ${DIGEST}: pull r/toolbox@${DIGEST}` }]);
  });

  it('says nothing on a resync that leaves the status as it was', () => {
    for (const s of [building(), built()]) assert.deepEqual(imageEvents(s, structuredClone(s)), []);
  });

  it('on a scheduled rebuild while Ready: BuildStarted, then Pushed even when the digest is the same', () => {
    const rebuilding = status(
      { Ready: ['True', 'Built', 'pull …; a rebuild is running'], Building: ['True', 'JobRunning'], Failed: ['False', 'Building'], Conflict: ['False', 'NoConflict'] },
      { jobName: 'toolbox-build-2', digest: DIGEST, image: `r/toolbox@${DIGEST}`, lastBuildTime: '2026-01-01T12:10:00Z' },
    );
    assert.deepEqual(reasons(built(), rebuilding), ['Normal BuildStarted']);
    assert.deepEqual(reasons(rebuilding, built(DIGEST, '2026-01-02T12:10:00Z', 'toolbox-build-2')), ['Normal Pushed']);
    assert.deepEqual(reasons(built(DIGEST), built(OTHER)), ['Normal Pushed']);
  });

  it('says Warning with the failure reason and message when a build fails, once', () => {
    const failed = status({ Ready: ['False', 'PackagesNotFound', 'package not found: nosuchpackage'], Building: ['False', 'PackagesNotFound'], Failed: ['True', 'PackagesNotFound', 'package not found: nosuchpackage'], Conflict: ['False', 'NoConflict'] });
    assert.deepEqual(imageEvents(building(), failed), [{ type: 'Warning', reason: 'PackagesNotFound', message: 'package not found: nosuchpackage' }]);
    assert.deepEqual(imageEvents(failed, structuredClone(failed)), []);
  });

  it('says DigestUnverified once per build, however often the registry is asked again', () => {
    const unverified = (message: string) =>
      status({ Ready: ['False', 'DigestUnverified', message], Building: ['False', 'DigestUnverified'], Failed: ['False', 'DigestUnverified'], Conflict: ['False', 'NoConflict'] });
    assert.deepEqual(imageEvents(building(), unverified('the registry answered 503')), [{ type: 'Warning', reason: 'DigestUnverified', message: 'the registry answered 503' }]);
    assert.deepEqual(imageEvents(unverified('the registry answered 503'), unverified('the registry answered 404')), []);
    assert.deepEqual(reasons(unverified('the registry answered 503'), built()), ['Normal Pushed']);
  });

  it('says Conflict when another NixImage holds the tag', () => {
    const conflict = status({ Ready: ['False', 'Conflict', 'taken'], Building: ['False', 'Conflict'], Failed: ['False', 'Conflict'], Conflict: ['True', 'TagClaimed', 'NixImage toolbox already declares toolbox:v1 on this instance'] });
    assert.deepEqual(imageEvents(undefined, conflict), [{ type: 'Warning', reason: 'Conflict', message: 'NixImage toolbox already declares toolbox:v1 on this instance' }]);
    assert.deepEqual(imageEvents(conflict, structuredClone(conflict)), []);
  });

  it('says nothing while the instance is missing: that is no transition of a build', () => {
    assert.deepEqual(imageEvents(undefined, status({ Ready: ['False', 'InstanceNotFound'], Building: ['False', 'InstanceNotFound'], Failed: ['False', 'InstanceNotFound'], Conflict: ['False', 'NoConflict'] })), []);
  });
});
