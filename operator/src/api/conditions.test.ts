import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getCondition, isConditionTrue, setCondition } from './conditions.ts';

describe('conditions', () => {
  it('keeps lastTransitionTime while the status stays, and moves it when the status changes', () => {
    const first = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Starting' }, 't1');
    const same = setCondition(first, { type: 'Ready', status: 'False', reason: 'StillStarting' }, 't2');
    assert.equal(getCondition(same, 'Ready')!.lastTransitionTime, 't1');
    assert.equal(getCondition(same, 'Ready')!.reason, 'StillStarting');
    const flipped = setCondition(same, { type: 'Ready', status: 'True', reason: 'Ready' }, 't3');
    assert.equal(getCondition(flipped, 'Ready')!.lastTransitionTime, 't3');
  });
  it('keeps other conditions and a stable order', () => {
    let conditions = setCondition(undefined, { type: 'Ready', status: 'True' }, 't');
    conditions = setCondition(conditions, { type: 'Degraded', status: 'False' }, 't');
    assert.deepEqual(conditions.map((c) => c.type), ['Degraded', 'Ready']);
  });
  it('count as true only when present with status True', () => {
    const conditions = [
      { type: 'Ready', status: 'True' as const },
      { type: 'Failed', status: 'False' as const },
      { type: 'Building', status: 'Unknown' as const },
    ];
    assert.equal(isConditionTrue(conditions, 'Ready'), true);
    assert.equal(isConditionTrue(conditions, 'Failed'), false);
    assert.equal(isConditionTrue(conditions, 'Building'), false);
    assert.equal(isConditionTrue(conditions, 'Conflict'), false);
    assert.equal(isConditionTrue(undefined, 'Ready'), false);
  });
});
