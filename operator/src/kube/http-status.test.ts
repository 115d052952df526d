import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException } from '@kubernetes/client-node';
import { statusOf } from './http-status.ts';

describe('the HTTP status of a failed API call', () => {
  it('is read from an ApiException, a watch error or an error with a response', () => {
    assert.equal(statusOf(new ApiException(409, 'Conflict', {}, {})), 409);
    assert.equal(statusOf(Object.assign(new Error('watch failed'), { statusCode: 410 })), 410);
    assert.equal(statusOf({ response: { statusCode: 404 } }), 404);
  });
  it('is undefined for an error that never reached the API server', () => {
    assert.equal(statusOf(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), undefined);
  });
});
