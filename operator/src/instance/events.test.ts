import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Condition, NixeryInstanceStatus } from '../api/types.ts';
import { instanceEvents } from './events.ts';

type Shape = Partial<Record<'Ready' | 'Progressing' | 'Degraded' | 'TLSReady', [Condition['status'], string, string?]>>;

/** A status as computeInstanceStatus writes it: each condition as [status, reason, message]. */
function status(conditions: Shape): NixeryInstanceStatus {
  return {
    endpoint: 'nixery.team-a.svc.cluster.local:5000',
    conditions: Object.entries(conditions).map(([type, [s, reason, message = '']]) => ({ type, status: s, reason, message })),
  };
}
const waiting = status({ Ready: ['False', 'WaitingForPods', '0 of 1 registry pods ready'], Progressing: ['True', 'RollingOut'], Degraded: ['False', 'AsExpected'] });
const ready = status({ Ready: ['True', 'RegistryAnswering', 'the registry answers at nixery.team-a.svc.cluster.local:5000'], Progressing: ['False', 'RolledOut'], Degraded: ['False', 'AsExpected'] });
const conflict = status({
  Ready: ['False', 'Conflict', 'Deployment nixery exists and is not this NixeryInstance\'s'],
  Progressing: ['True', 'RollingOut'],
  Degraded: ['True', 'Conflict', 'Deployment nixery exists and is not this NixeryInstance\'s'],
});
const reasons = (before: NixeryInstanceStatus | undefined, after: NixeryInstanceStatus) => instanceEvents(before, after).map((e) => `${e.type} ${e.reason}`);

describe('the Events of a NixeryInstance status change', () => {
  it('says nothing for a new instance whose pods are starting, nor for a resync that changes nothing', () => {
    assert.deepEqual(reasons(undefined, waiting), []);
    assert.deepEqual(reasons(waiting, waiting), []);
    assert.deepEqual(reasons(ready, ready), []);
  });

  it('says RegistryReady, with where it answers, when the registry first answers', () => {
    assert.deepEqual(instanceEvents(waiting, ready), [{ type: 'Normal', reason: 'RegistryReady', message: 'the registry answers at nixery.team-a.svc.cluster.local:5000' }]);
  });

  it("warns once with Degraded's reason and message (a conflict, a refused image, a missing Secret), and again only when the reason changes", () => {
    assert.deepEqual(instanceEvents(undefined, conflict), [{ type: 'Warning', reason: 'Conflict', message: 'Deployment nixery exists and is not this NixeryInstance\'s' }]);
    assert.deepEqual(reasons(conflict, conflict), []);
    const missing = status({ Ready: ['False', 'SecretNotFound'], Degraded: ['True', 'SecretNotFound', 'Secret gcs-key does not exist'] });
    assert.deepEqual(reasons(conflict, missing), ['Warning SecretNotFound']);
  });

  it('warns RegistryNotReady when a Ready registry stops answering for a reason Degraded does not give', () => {
    const lost = status({ Ready: ['False', 'WaitingForPods', '0 of 1 registry pods ready'], Progressing: ['False', 'RolledOut'], Degraded: ['False', 'AsExpected'] });
    assert.deepEqual(instanceEvents(ready, lost), [{ type: 'Warning', reason: 'RegistryNotReady', message: '0 of 1 registry pods ready' }]);
    const degraded = status({ Ready: ['False', 'RegistryNotAnswering', 'GET failed'], Degraded: ['True', 'RegistryNotAnswering', 'GET failed'] });
    assert.deepEqual(reasons(ready, degraded), ['Warning RegistryNotAnswering'], 'one Warning, not two');
  });

  it('says RollingOut when a spec change rolls out over a Ready registry, and CertificateReady when TLS becomes usable', () => {
    const rolling = status({ Ready: ['True', 'RegistryAnswering'], Progressing: ['True', 'RollingOut', '0 of 2 registry pods updated'], Degraded: ['False', 'AsExpected'] });
    assert.deepEqual(instanceEvents(ready, rolling), [{ type: 'Normal', reason: 'RollingOut', message: '0 of 2 registry pods updated' }]);
    const tls = status({ Ready: ['True', 'RegistryAnswering'], Progressing: ['False', 'RolledOut'], Degraded: ['False', 'AsExpected'], TLSReady: ['True', 'CertificateIssued', 'serving certificate valid until …'] });
    assert.deepEqual(reasons(ready, tls), ['Normal CertificateReady']);
  });
});
