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
