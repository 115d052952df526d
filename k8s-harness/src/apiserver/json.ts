// Objects as they arrive in request bodies and live in the store: plain JSON.
export type Json = unknown;
export type JsonObject = Record<string, Json>;

export function isObject(v: Json): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
