// The builder's own failure; how every failure is reported is builder/outcome.ts.

/** A storage write or read failed while building; distinct from a Nix failure. */
export class BuildStorageError extends Error {
  readonly code = 'STORAGE_FAILURE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'BuildStorageError';
  }
}
