import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkPushAuthorization } from './auth.ts';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('push authorization', () => {
  it('accepts the token as a bearer token or as a basic-auth password', () => {
    assert.deepEqual(checkPushAuthorization('Bearer s3cret', 's3cret'), { ok: true });
    assert.deepEqual(checkPushAuthorization(basic('anyone', 's3cret'), 's3cret'), { ok: true });
  });
  it('rejects a wrong or malformed credential, and everything when pushing is disabled', () => {
    assert.deepEqual(checkPushAuthorization('Bearer nope', 's3cret'), { ok: false, reason: 'invalid' });
    assert.deepEqual(checkPushAuthorization(basic('u', 's3cret-not'), 's3cret'), { ok: false, reason: 'invalid' });
    assert.deepEqual(checkPushAuthorization('Digest x', 's3cret'), { ok: false, reason: 'invalid' });
    assert.deepEqual(checkPushAuthorization(undefined, 's3cret'), { ok: false, reason: 'missing' });
    assert.deepEqual(checkPushAuthorization('Bearer s3cret', undefined), { ok: false, reason: 'disabled' });
  });
});
