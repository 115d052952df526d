import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_STATUS, errorBody, RegistryError } from './errors.ts';

describe('registry errors', () => {
  it('render in the distribution spec JSON format', () => {
    const error = new RegistryError('MANIFEST_UNKNOWN', 'packages not found: a, b', { packages: ['a', 'b'] });
    assert.deepEqual(errorBody(error), {
      errors: [{ code: 'MANIFEST_UNKNOWN', message: 'packages not found: a, b', detail: { packages: ['a', 'b'] } }],
    });
    assert.deepEqual(errorBody(new RegistryError('NAME_INVALID', 'bad')), { errors: [{ code: 'NAME_INVALID', message: 'bad' }] });
  });

  it('carry the status the spec gives their code', () => {
    const expected: Record<string, number> = {
      NAME_INVALID: 400,
      TAG_INVALID: 400,
      DIGEST_INVALID: 400,
      MANIFEST_UNKNOWN: 404,
      BLOB_UNKNOWN: 404,
      NAME_UNKNOWN: 404,
      UNAUTHORIZED: 401,
      DENIED: 403,
      UNSUPPORTED: 405,
      TOOMANYREQUESTS: 429,
    };
    for (const [code, status] of Object.entries(expected)) {
      assert.equal(new RegistryError(code as keyof typeof ERROR_STATUS, 'x').status, status, code);
    }
    assert.equal(new RegistryError('NAME_UNKNOWN', 'x', undefined, 418).status, 418, 'an explicit status wins');
  });
});
