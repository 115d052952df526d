// The last few build errors, shown on the index page as Nixery does.
export interface RecentError {
  time: string;
  image: string;
  message: string;
}

export class RecentErrors {
  private readonly entries: RecentError[] = [];
  private readonly limit: number;

  constructor(limit = 20) {
    this.limit = limit;
  }

  add(image: string, message: string, now: Date = new Date()): void {
    this.entries.unshift({ time: now.toISOString(), image, message });
    this.entries.length = Math.min(this.entries.length, this.limit);
  }

  list(): readonly RecentError[] {
    return this.entries;
  }
}
