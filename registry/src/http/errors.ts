// Registry errors in the distribution spec's JSON format:
// {"errors":[{"code":"...","message":"...","detail":...}]}, with the status the spec gives each code.

export const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  RANGE_INVALID: 416,
  UNKNOWN: 500,
  UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Response headers the answer carries, e.g. Retry-After with TOOMANYREQUESTS. */
  readonly headers: Readonly<Record<string, string>>;
  constructor(code: ErrorCode, message: string, detail?: unknown, status?: number, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'RegistryError';
    this.code = code;
    this.status = status ?? ERROR_STATUS[code];
    this.detail = detail;
    this.headers = headers;
  }
}

export interface ErrorBody {
  errors: { code: ErrorCode; message: string; detail?: unknown }[];
}

export function errorBody(error: RegistryError): ErrorBody {
  return {
    errors: [{ code: error.code, message: error.message, ...(error.detail === undefined ? {} : { detail: error.detail }) }],
  };
}
