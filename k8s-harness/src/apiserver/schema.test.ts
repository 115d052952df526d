import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fieldErrorMessage } from './errors.ts';
import { validateCrd } from './crd.ts';
import { applyDefaults, compileSchema, prune, validateValue } from './schema.ts';
import type { Schema } from './schema.ts';

const schema: Schema = {
  type: 'object',
  properties: {
    spec: {
      type: 'object',
      required: ['image'],
      properties: {
        image: { type: 'string', minLength: 1, pattern: '^[a-z/:.0-9-]+$' },
        replicas: { type: 'integer', minimum: 0, maximum: 3, default: 1 },
        mode: { type: 'string', enum: ['fast', 'safe'] },
        extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        ports: { type: 'array', maxItems: 2, items: { type: 'integer' } },
        note: { type: 'string', nullable: true },
        storage: { type: 'object', properties: { size: { 'x-kubernetes-int-or-string': true } } },
      },
      'x-kubernetes-validations': [{ rule: 'self.replicas <= 1 || has(self.storage)', message: 'replicas above 1 need storage', fieldPath: '.replicas' }],
    },
  },
};

/** Validation runs on defaulted objects, as in the apiserver's decode-default-validate order. */
const messages = (value: unknown, old?: unknown): string[] => validateValue(compileSchema(schema).compiled, applyDefaults(structuredClone(value), schema), old).map(fieldErrorMessage);

describe('structural schemas', () => {
  it('prunes unknown fields except where unknown fields are preserved, and reports them', () => {
    const o = { apiVersion: 'x/v1', kind: 'X', metadata: { name: 'a', bogus: 1 }, spec: { image: 'i', colour: 'red', extra: { anything: true } }, junk: 1 };
    assert.deepEqual(prune(o, schema, '', true), ['metadata.bogus', 'spec.colour', 'junk']);
    assert.deepEqual(o, { apiVersion: 'x/v1', kind: 'X', metadata: { name: 'a' }, spec: { image: 'i', extra: { anything: true } } });
  });

  it('applies defaults', () => {
    assert.deepEqual(applyDefaults({ spec: { image: 'i' } }, schema), { spec: { image: 'i', replicas: 1 } });
    assert.deepEqual(applyDefaults({ spec: { image: 'i', replicas: 0 } }, schema), { spec: { image: 'i', replicas: 0 } });
  });

  it('reports violations with the apiserver wording', () => {
    assert.deepEqual(messages({ spec: { image: 'i', replicas: 'two' } }), [
      'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
      '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation',
    ]);
    assert.deepEqual(messages({ spec: {} }), ['spec.image: Required value']);
    assert.deepEqual(messages({ spec: { image: 'i', mode: 'slow' } }), ['spec.mode: Unsupported value: "slow": supported values: "fast", "safe"']);
    assert.deepEqual(messages({ spec: { image: 'I', replicas: 1 } }), ["spec.image: Invalid value: \"I\": spec.image in body should match '^[a-z/:.0-9-]+$'"]);
    assert.deepEqual(messages({ spec: { image: 'i', replicas: 5 } }), [
      'spec.replicas: Invalid value: 5: spec.replicas in body should be less than or equal to 3',
      'spec.replicas: Invalid value: "object": replicas above 1 need storage',
    ]);
    assert.deepEqual(messages({ spec: { image: 'i', ports: [1, 2, 3] } }), ['spec.ports: Too many: 3: must have at most 2 items']);
    assert.deepEqual(messages({ spec: { image: 'i', note: null, storage: { size: '1Gi' } } }), []);
    assert.equal(messages({ spec: { image: 'i', storage: { size: true } } })[0], 'spec.storage.size: Invalid value: "boolean": spec.storage.size in body must be of type integer,string: "boolean"');
  });
});

describe('CustomResourceDefinition validation', () => {
  const crd = (rule: string): Record<string, unknown> => ({
    metadata: { name: 'things.example.com' },
    spec: {
      group: 'example.com',
      scope: 'Namespaced',
      names: { plural: 'things', kind: 'Thing' },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', 'x-kubernetes-validations': [{ rule }] } } } } }],
    },
  });

  it('accepts rules it can evaluate and rejects the ones it cannot', () => {
    assert.deepEqual(validateCrd(crd('has(self.a)')), []);
    const problems = validateCrd(crd('self.a.isSorted()')).map(fieldErrorMessage);
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /^spec.versions\[0\].schema.openAPIV3Schema.properties\[spec\].x-kubernetes-validations\[0\].rule: Invalid value: "self.a.isSorted\(\)": compilation failed: undeclared reference to 'isSorted'/);
  });

  it('requires the name to be plural.group and exactly one storage version', () => {
    const bad = crd('true');
    (bad.metadata as Record<string, unknown>).name = 'wrong.example.com';
    const [version] = (bad.spec as { versions: Record<string, unknown>[] }).versions;
    if (version) version.storage = false;
    assert.deepEqual(validateCrd(bad).map((e) => e.field), ['metadata.name', 'spec.versions']);
  });
});
