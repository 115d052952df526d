// Objects as they arrive in request bodies and live in the store: plain JSON.
export type Json = unknown;
export type JsonObject = Record<string, Json>;

export function isObject(v: Json): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `v` if it is an object; an empty one (not attached to anything) if not. */
export function obj(v: unknown): JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

export function metaOf(o: JsonObject): JsonObject {
  if (typeof o.metadata !== 'object' || o.metadata === null) o.metadata = {};
  return o.metadata as JsonObject;
}
