// Builds and collections of the Nix store, kept apart where a build's paths are not yet rooted.
// A build evaluates (Nix writes its derivations, unrooted) and then roots them and their outputs
// (nix/gc-roots.ts): that stretch is `shared`; a collection is `exclusive`, so it never runs
// inside one, and no new stretch starts while it runs or waits (it waits for those in progress,
// each bounded by NIX_TIMEOUT). Builds past that stretch go on during a collection: their roots
// keep their paths live.
export class StoreGate {
  private readers = 0;
  private writer: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  /** Runs `section` while no collection runs; waits for one running or waiting. */
  async shared<T>(section: () => Promise<T>): Promise<T> {
    while (this.writer) await this.writer;
    this.readers++;
    try {
      return await section();
    } finally {
      this.readers--;
      if (this.readers === 0) this.drained?.();
    }
  }

  /** Runs `section` alone: once every shared section in progress ended, and holding new ones back. */
  async exclusive<T>(section: () => Promise<T>): Promise<T> {
    while (this.writer) await this.writer;
    let release!: () => void;
    this.writer = new Promise<void>((resolve) => (release = resolve));
    try {
      if (this.readers > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      this.drained = undefined;
      return await section();
    } finally {
      this.writer = undefined;
      release();
    }
  }
}
