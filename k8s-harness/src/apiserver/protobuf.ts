// Decoding of Kubernetes' protobuf request bodies (`application/vnd.kubernetes.protobuf`) for
// the kinds clients send that way: client-go typed clients default to protobuf for built-in
// kinds, helm writes its release Secrets (and DeleteOptions) through one, and kubectl its
// TokenRequests. Responses are
// always JSON, which those clients accept. Kinds without a descriptor here are refused (415).
import { unsupportedMediaType } from './errors.ts';

type JsonObject = Record<string, unknown>;

type Scalar = 'string' | 'bytes' | 'int' | 'bool' | 'time' | 'rawjson';
interface Field {
  name: string;
  type: Scalar | Desc | { map: Scalar };
  repeated?: boolean;
}
type Desc = Record<number, Field>;

const STRING_MAP: Field['type'] = { map: 'string' };

const OWNER_REFERENCE: Desc = {
  1: { name: 'kind', type: 'string' },
  3: { name: 'name', type: 'string' },
  4: { name: 'uid', type: 'string' },
  5: { name: 'apiVersion', type: 'string' },
  6: { name: 'controller', type: 'bool' },
  7: { name: 'blockOwnerDeletion', type: 'bool' },
};

const MANAGED_FIELDS_ENTRY: Desc = {
  1: { name: 'manager', type: 'string' },
  2: { name: 'operation', type: 'string' },
  3: { name: 'apiVersion', type: 'string' },
  4: { name: 'time', type: 'time' },
  6: { name: 'fieldsType', type: 'string' },
  7: { name: 'fieldsV1', type: { 1: { name: 'raw', type: 'rawjson' } } },
  8: { name: 'subresource', type: 'string' },
};

const OBJECT_META: Desc = {
  1: { name: 'name', type: 'string' },
  2: { name: 'generateName', type: 'string' },
  3: { name: 'namespace', type: 'string' },
  4: { name: 'selfLink', type: 'string' },
  5: { name: 'uid', type: 'string' },
  6: { name: 'resourceVersion', type: 'string' },
  7: { name: 'generation', type: 'int' },
  8: { name: 'creationTimestamp', type: 'time' },
  9: { name: 'deletionTimestamp', type: 'time' },
  10: { name: 'deletionGracePeriodSeconds', type: 'int' },
  11: { name: 'labels', type: STRING_MAP },
  12: { name: 'annotations', type: STRING_MAP },
  13: { name: 'ownerReferences', type: OWNER_REFERENCE, repeated: true },
  14: { name: 'finalizers', type: 'string', repeated: true },
  17: { name: 'managedFields', type: MANAGED_FIELDS_ENTRY, repeated: true },
};

const KINDS: Record<string, Desc> = {
  Secret: {
    1: { name: 'metadata', type: OBJECT_META },
    2: { name: 'data', type: { map: 'bytes' } },
    3: { name: 'type', type: 'string' },
    4: { name: 'stringData', type: STRING_MAP },
    5: { name: 'immutable', type: 'bool' },
  },
  ConfigMap: {
    1: { name: 'metadata', type: OBJECT_META },
    2: { name: 'data', type: STRING_MAP },
    3: { name: 'binaryData', type: { map: 'bytes' } },
    4: { name: 'immutable', type: 'bool' },
  },
  Namespace: {
    1: { name: 'metadata', type: OBJECT_META },
    2: { name: 'spec', type: { 1: { name: 'finalizers', type: 'string', repeated: true } } },
  },
  ServiceAccount: {
    1: { name: 'metadata', type: OBJECT_META },
    3: { name: 'imagePullSecrets', type: { 1: { name: 'name', type: 'string' } }, repeated: true },
    4: { name: 'automountServiceAccountToken', type: 'bool' },
  },
  // kubectl create token
  TokenRequest: {
    1: { name: 'metadata', type: OBJECT_META },
    2: {
      name: 'spec',
      type: {
        1: { name: 'audiences', type: 'string', repeated: true },
        3: { name: 'boundObjectRef', type: { 1: { name: 'kind', type: 'string' }, 2: { name: 'apiVersion', type: 'string' }, 3: { name: 'name', type: 'string' }, 4: { name: 'uid', type: 'string' } } },
        4: { name: 'expirationSeconds', type: 'int' },
      },
    },
  },
  DeleteOptions: {
    1: { name: 'gracePeriodSeconds', type: 'int' },
    2: { name: 'preconditions', type: { 1: { name: 'uid', type: 'string' }, 2: { name: 'resourceVersion', type: 'string' } } },
    3: { name: 'orphanDependents', type: 'bool' },
    4: { name: 'propagationPolicy', type: 'string' },
    5: { name: 'dryRun', type: 'string', repeated: true },
  },
};

const TIME: Desc = { 1: { name: 'seconds', type: 'int' }, 2: { name: 'nanos', type: 'int' } };
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

export class ProtobufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtobufError';
  }
}

class Reader {
  pos = 0;
  readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new ProtobufError('truncated varint');
      const b = this.buf[this.pos++] ?? 0;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  }
  bytes(): Buffer {
    const len = Number(this.varint());
    const out = this.buf.subarray(this.pos, this.pos + len);
    if (out.length !== len) throw new ProtobufError('truncated bytes');
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new ProtobufError(`unsupported wire type ${wire}`);
  }
}

function decodeScalar(type: Scalar, r: Reader, wire: number): unknown {
  switch (type) {
    case 'string':
      return r.bytes().toString('utf8');
    case 'bytes':
      return r.bytes().toString('base64');
    case 'rawjson':
      return JSON.parse(r.bytes().toString('utf8')) as unknown;
    case 'int': {
      const v = BigInt.asIntN(64, r.varint());
      return Number(v);
    }
    case 'bool':
      return r.varint() !== 0n;
    case 'time': {
      const t = decodeMessage(r.bytes(), TIME);
      return new Date(Number(t.seconds ?? 0) * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    }
  }
  throw new ProtobufError(`cannot decode wire type ${wire}`);
}

function decodeMessage(buf: Buffer, desc: Desc): JsonObject {
  const r = new Reader(buf);
  const out: JsonObject = {};
  while (!r.done()) {
    const tag = Number(r.varint());
    const num = tag >> 3;
    const wire = tag & 7;
    const field = desc[num];
    if (!field) {
      r.skip(wire);
      continue;
    }
    let value: unknown;
    if (typeof field.type === 'string') value = decodeScalar(field.type, r, wire);
    else if ('map' in field.type) {
      const entry = decodeMessage(r.bytes(), { 1: { name: 'key', type: 'string' }, 2: { name: 'value', type: field.type.map as Scalar } });
      const map = (out[field.name] ?? {}) as JsonObject;
      map[String(entry.key ?? '')] = entry.value ?? (field.type.map === 'bytes' ? '' : '');
      out[field.name] = map;
      continue;
    } else value = decodeMessage(r.bytes(), field.type as Desc);
    if (field.repeated) out[field.name] = [...((out[field.name] as unknown[] | undefined) ?? []), value];
    else out[field.name] = value;
  }
  if (desc === MANAGED_FIELDS_ENTRY && out.fieldsV1 !== undefined) out.fieldsV1 = (out.fieldsV1 as JsonObject).raw ?? {};
  return out;
}

/** Decodes a `k8s\0`-prefixed runtime.Unknown envelope into a JSON object with apiVersion/kind. */
export function decodeProtobufObject(body: Buffer): JsonObject {
  if (!body.subarray(0, 4).equals(MAGIC)) throw new ProtobufError('missing k8s protobuf magic prefix');
  const envelope = decodeMessage(body.subarray(4), {
    1: { name: 'typeMeta', type: { 1: { name: 'apiVersion', type: 'string' }, 2: { name: 'kind', type: 'string' } } },
    2: { name: 'raw', type: 'bytes' },
  });
  const typeMeta = (envelope.typeMeta ?? {}) as JsonObject;
  const kind = String(typeMeta.kind ?? '');
  const desc = KINDS[kind];
  if (!desc) throw unsupportedMediaType(`application/vnd.kubernetes.protobuf (kind ${kind || 'unknown'} is only accepted as JSON here)`);
  const raw = Buffer.from(String(envelope.raw ?? ''), 'base64');
  const decoded = decodeMessage(raw, desc);
  return { ...(typeMeta.apiVersion ? { apiVersion: typeMeta.apiVersion } : {}), kind, ...decoded };
}
