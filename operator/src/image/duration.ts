/** Parses durations like 90s, 30m, 24h or 1h30m into milliseconds (the CRD's rebuildInterval pattern). */
export function parseDuration(value: string): number {
  const parts = [...value.matchAll(/([0-9]+)(s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value) throw new Error(`invalid duration ${JSON.stringify(value)}`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000 } as const;
  return parts.reduce((ms, p) => ms + Number(p[1]) * unit[p[2] as keyof typeof unit], 0);
}
