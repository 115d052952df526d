// The CRDs in crds/ as users meet them through `kubectl explain`: every property of both
// openAPIV3Schemas (spec, status, nested objects, the objects inside arrays) carries a
// description, and every x-kubernetes-validations rule a message. The test cluster's e2e suite
// (e2e/operator/crd-api.test.ts) proves the same text reaches `kubectl explain` and the rules
// reach the API server.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadYaml } from '@kubernetes/client-node';

const CRDS = path.join(import.meta.dirname, '../../../crds');
const FILES = ['nixery.dev_nixeryinstances.yaml', 'nixery.dev_niximages.yaml'];

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  maxItems?: number;
  maxLength?: number;
  'x-kubernetes-validations'?: { rule: string; message?: string; messageExpression?: string }[];
}

interface Crd {
  spec: { names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
}

function load(file: string): Crd {
  return loadYaml<Crd>(fs.readFileSync(path.join(CRDS, file), 'utf8'));
}

/** Every schema node under the root, by its `kubectl explain` path (`spec.auth.policy.rules[]`). */
export function walk(schema: Schema, at = ''): { path: string; schema: Schema }[] {
  const out: { path: string; schema: Schema }[] = [];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const here = at ? `${at}.${name}` : name;
    out.push({ path: here, schema: child });
    out.push(...walk(child, here));
  }
  if (schema.items) out.push(...walk(schema.items, `${at}[]`), ...(schema.items.properties ? [{ path: `${at}[]`, schema: schema.items }] : []));
  if (typeof schema.additionalProperties === 'object') out.push(...walk(schema.additionalProperties, `${at}{}`));
  return out;
}

function described(s: Schema): boolean {
  return typeof s.description === 'string' && s.description.trim().length >= 10;
}

describe('the CRDs describe every field for kubectl explain', () => {
  for (const file of FILES) {
    it(`${file}: every property, and every object inside an array, has a description`, () => {
      const crd = load(file);
      for (const version of crd.spec.versions) {
        const root = version.schema.openAPIV3Schema;
        assert.ok(described(root), `${crd.spec.names.kind} ${version.name}: the root has no description`);
        const nodes = walk(root);
        assert.ok(nodes.length > 30, `${file}: only ${nodes.length} schema nodes found: the walk is broken`);
        const missing = nodes.filter((n) => !described(n.schema)).map((n) => n.path);
        assert.deepEqual(missing, [], `${crd.spec.names.kind} ${version.name}: properties without a description: ${missing.join(', ')}`);
      }
    });

    it(`${file}: every CEL rule has a message, and the lists and strings it reads are bounded`, () => {
      const crd = load(file);
      for (const version of crd.spec.versions) {
        const nodes = [{ path: '<root>', schema: version.schema.openAPIV3Schema }, ...walk(version.schema.openAPIV3Schema)];
        for (const { path: at, schema } of nodes) {
          for (const rule of schema['x-kubernetes-validations'] ?? []) {
            assert.ok(rule.message && rule.message.length > 20, `${at}: rule ${rule.rule} has no message worth reading`);
            // Rules comparing whole values (self == oldSelf) cost as much as the value is long: real
            // API servers refuse a rule whose estimated cost is unbounded.
            if (/self\s*==\s*oldSelf/.test(rule.rule)) {
              if (schema.type === 'array') assert.ok(schema.maxItems !== undefined, `${at}: ${rule.rule} on a list without maxItems`);
              if (schema.type === 'string') assert.ok(schema.maxLength !== undefined, `${at}: ${rule.rule} on a string without maxLength`);
            }
            if (schema.type === 'string' && /\.(matches|contains|endsWith|startsWith)\(/.test(rule.rule)) {
              assert.ok(schema.maxLength !== undefined, `${at}: ${rule.rule} on a string without maxLength`);
            }
          }
        }
      }
    });
  }

  it('the walk sees nested objects and the objects inside arrays', () => {
    const paths = walk({
      type: 'object',
      properties: { spec: { type: 'object', properties: { rules: { type: 'array', items: { type: 'object', properties: { users: { type: 'array', items: { type: 'string' } } } } } } } },
    }).map((n) => n.path);
    assert.deepEqual(paths.sort(), ['spec', 'spec.rules', 'spec.rules[]', 'spec.rules[].users'].sort());
  });
});
