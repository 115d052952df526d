// Every failure while packing a layer is one of these, so callers can tell a
// bad request (invalid path) from a broken store (read errors) and log the path.

export class PackError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PackError';
  }
}

/** A path handed to the packer is not a top-level `/nix/store/<name>` path. */
export class InvalidStorePathError extends PackError {
  readonly code = 'INVALID_STORE_PATH';
  readonly storePath: string;
  constructor(storePath: string, reason: string) {
    super(`invalid store path ${JSON.stringify(storePath)}: ${reason}`);
    this.name = 'InvalidStorePathError';
    this.storePath = storePath;
  }
}

/** Reading the store failed (missing path, permission, I/O error). */
export class StoreReadError extends PackError {
  readonly code = 'STORE_READ_FAILED';
  /** Where the file was read from on this machine (under the packer's root). */
  readonly fsPath: string;
  constructor(fsPath: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`reading ${fsPath}: ${detail}`, { cause });
    this.name = 'StoreReadError';
    this.fsPath = fsPath;
  }
}

/** A file's length changed between lstat and reading it; store paths are immutable, so the store is broken. */
export class StoreFileChangedError extends PackError {
  readonly code = 'STORE_FILE_CHANGED';
  readonly fsPath: string;
  readonly expectedSize: number;
  readonly actualSize: number;
  constructor(fsPath: string, expectedSize: number, actualSize: number) {
    super(`${fsPath} changed while packing: expected ${expectedSize} bytes, read ${actualSize}`);
    this.name = 'StoreFileChangedError';
    this.fsPath = fsPath;
    this.expectedSize = expectedSize;
    this.actualSize = actualSize;
  }
}

/** Nix stores only files, directories and symlinks; anything else means this is not a store. */
export class UnsupportedFileTypeError extends PackError {
  readonly code = 'UNSUPPORTED_FILE_TYPE';
  readonly fsPath: string;
  constructor(fsPath: string) {
    super(`${fsPath} is neither a regular file, a directory nor a symlink`);
    this.name = 'UnsupportedFileTypeError';
    this.fsPath = fsPath;
  }
}

/**
 * A file name or symlink target is not valid UTF-8. Tar headers carry names as
 * UTF-8 strings here; mangling the name silently would ship a different file.
 */
export class NonUtf8NameError extends PackError {
  readonly code = 'NON_UTF8_NAME';
  readonly fsPath: string;
  constructor(fsPath: string) {
    super(`${fsPath}: name or symlink target is not valid UTF-8`);
    this.name = 'NonUtf8NameError';
    this.fsPath = fsPath;
  }
}

/** zlib failed to deflate a block (on libuv's thread pool); the layer's bytes are incomplete, so the pack fails. */
export class DeflateError extends PackError {
  readonly code = 'DEFLATE_FAILED';
  /** Offset of the failed block in the uncompressed layer. */
  readonly offset: number;
  constructor(offset: number, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`deflating the block at offset ${offset}: ${detail}`, { cause });
    this.name = 'DeflateError';
    this.offset = offset;
  }
}

export class CompressBlockError extends PackError {
  readonly code = 'COMPRESS_FAILED';
  /** Offset of the failed block in the uncompressed layer. */
  readonly offset: number;
  constructor(format: string, offset: number, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`${format}-compressing the block at offset ${offset}: ${detail}`, { cause });
    this.name = 'CompressBlockError';
    this.offset = offset;
  }
}

/** A packing error as it crosses from the tar thread to the event loop (structured clone keeps no classes). */
export interface PackErrorData {
  name: string;
  message: string;
  fsPath?: string;
  expectedSize?: number;
  actualSize?: number;
  /** For StoreReadError: the system error, with its code (ENOENT, EACCES…). */
  cause?: { message: string; code?: string; errno?: number; syscall?: string; path?: string };
}

export function packErrorData(err: unknown): PackErrorData {
  if (!(err instanceof Error)) return { name: 'PackError', message: String(err) };
  const data: PackErrorData = { name: err.name, message: err.message };
  if ('fsPath' in err && typeof err.fsPath === 'string') data.fsPath = err.fsPath;
  if (err instanceof StoreFileChangedError) {
    data.expectedSize = err.expectedSize;
    data.actualSize = err.actualSize;
  }
  if (err.cause instanceof Error) {
    const cause = err.cause as NodeJS.ErrnoException;
    data.cause = { message: cause.message };
    if (cause.code !== undefined) data.cause.code = cause.code;
    if (cause.errno !== undefined) data.cause.errno = cause.errno;
    if (cause.syscall !== undefined) data.cause.syscall = cause.syscall;
    if (cause.path !== undefined) data.cause.path = cause.path;
  }
  return data;
}

/** The error `packErrorData` described, as an instance of the same class. */
export function packErrorFrom(data: PackErrorData): PackError {
  const fsPath = data.fsPath ?? '';
  switch (data.name) {
    case 'StoreReadError': {
      const cause = Object.assign(new Error(data.cause?.message ?? data.message), data.cause ?? {});
      return new StoreReadError(fsPath, cause);
    }
    case 'StoreFileChangedError':
      return new StoreFileChangedError(fsPath, data.expectedSize ?? 0, data.actualSize ?? 0);
    case 'UnsupportedFileTypeError':
      return new UnsupportedFileTypeError(fsPath);
    case 'NonUtf8NameError':
      return new NonUtf8NameError(fsPath);
    default:
      // Anything else is a bug on the tar thread; its message is all there is to keep.
      return new PackError(`${data.name}: ${data.message}`);
  }
}
