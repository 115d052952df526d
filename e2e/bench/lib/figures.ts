// One measured figure next to its baseline from the same run, and the tables made of them.
// Only ratios are claimed: absolute numbers on a shared 2-core machine are noise.

export type Better = 'higher' | 'lower';

export interface Target {
  /** ratio-min: ours/baseline ≥ value; ratio-max: ours/baseline ≤ value; abs-max: ours < value; abs-eq: ours = value. */
  kind: 'ratio-min' | 'ratio-max' | 'abs-max' | 'abs-eq';
  value: number;
}

export interface Figure {
  id: string;
  suite: string;
  label: string;
  unit: string;
  better: Better;
  ours: number | null;
  baseline: number | null;
  baselineLabel: string;
  /** ours / baseline, whichever way is better (see `better`). */
  ratio: number | null;
  target?: Target;
  met?: boolean | null;
  note?: string;
  /** Every iteration's value, for the JSON. */
  samples?: { ours: number[]; baseline: number[] };
}

export interface FigureInput {
  id: string;
  label: string;
  unit: string;
  better: Better;
  ours: number | null | undefined;
  baseline?: number | null | undefined;
  baselineLabel?: string;
  target?: Target;
  note?: string;
  samples?: { ours: number[]; baseline: number[] };
}

export class Figures {
  readonly list: Figure[] = [];
  readonly errors: { suite: string; message: string }[] = [];
  private suite = '';

  begin(suite: string): void {
    this.suite = suite;
  }

  add(input: FigureInput): Figure {
    const ours = finite(input.ours);
    const baseline = finite(input.baseline);
    const ratio = ours !== null && baseline !== null && baseline !== 0 ? ours / baseline : null;
    const figure: Figure = {
      id: input.id,
      suite: this.suite,
      label: input.label,
      unit: input.unit,
      better: input.better,
      ours,
      baseline,
      baselineLabel: input.baselineLabel ?? '',
      ratio,
      ...(input.target ? { target: input.target, met: judge(input.target, ours, ratio) } : {}),
      ...(input.note ? { note: input.note } : {}),
      ...(input.samples ? { samples: input.samples } : {}),
    };
    this.list.push(figure);
    return figure;
  }

  fail(message: string): void {
    this.errors.push({ suite: this.suite, message });
  }
}

function finite(value: number | null | undefined): number | null {
  return value === undefined || value === null || !Number.isFinite(value) ? null : value;
}

function judge(target: Target, ours: number | null, ratio: number | null): boolean | null {
  switch (target.kind) {
    case 'ratio-min':
      return ratio === null ? null : ratio >= target.value;
    case 'ratio-max':
      return ratio === null ? null : ratio <= target.value;
    case 'abs-max':
      return ours === null ? null : ours < target.value;
    case 'abs-eq':
      return ours === null ? null : ours === target.value;
  }
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function fmt(value: number | null, unit: string): string {
  if (value === null) return '—';
  const abs = Math.abs(value);
  const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : abs >= 10 ? 2 : abs >= 1 ? 2 : 3;
  const n = value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  return unit ? `${n} ${unit}` : n;
}

function targetText(target: Target | undefined, unit: string): string {
  if (!target) return '';
  switch (target.kind) {
    case 'ratio-min':
      return `≥ ${target.value}×`;
    case 'ratio-max':
      return `≤ ${target.value}×`;
    case 'abs-max':
      return `< ${fmt(target.value, unit)}`;
    case 'abs-eq':
      return `= ${fmt(target.value, unit)}`;
  }
}

function metText(figure: Figure): string {
  if (!figure.target) return '';
  return figure.met === true ? 'yes' : figure.met === false ? '**no**' : '?';
}

export interface RunInfo {
  startedAt: string;
  finishedAt: string;
  mode: 'full' | 'smoke';
  host: { cpus: number; loadavgStart: number[]; loadavgEnd: number[]; node: string; kernel: string };
  tools: Record<string, string>;
  sizes: Record<string, number | string>;
}

export function renderMarkdown(info: RunInfo, figures: Figures): string {
  const lines: string[] = [];
  lines.push(`# Benchmarks (${info.mode})`);
  lines.push('');
  lines.push(
    `Run ${info.startedAt} → ${info.finishedAt} on ${info.host.cpus} cores (load average ${info.host.loadavgStart.map((l) => l.toFixed(2)).join(' ')} at the start, ` +
      `${info.host.loadavgEnd.map((l) => l.toFixed(2)).join(' ')} at the end), Node ${info.host.node}, Linux ${info.host.kernel}. ` +
      'Ours and each baseline were measured side by side in this run; only the ratios mean anything.',
  );
  lines.push('');
  lines.push('Ratio is ours ÷ baseline; `better` says which direction is good.');
  lines.push('');
  lines.push('| suite | figure | ours | baseline | ratio | better | target | met |');
  lines.push('| --- | --- | ---: | --- | ---: | --- | --- | --- |');
  const cell = (text: string) => text.replaceAll('|', '\\|');
  for (const f of figures.list) {
    const baseline = f.baseline === null ? (f.baselineLabel ? f.baselineLabel : '—') : `${fmt(f.baseline, f.unit)} (${f.baselineLabel})`;
    const ratio = f.ratio === null ? '—' : `${f.ratio.toFixed(2)}×`;
    const cells = [f.suite, f.label, fmt(f.ours, f.unit), baseline, ratio, f.better, targetText(f.target, f.unit), metText(f)];
    lines.push(`| ${cells.map(cell).join(' | ')} |`);
  }
  const notes = figures.list.filter((f) => f.note);
  if (notes.length) {
    lines.push('');
    lines.push('Notes:');
    lines.push('');
    for (const f of notes) lines.push(`- ${f.label}: ${f.note}`);
  }
  if (figures.errors.length) {
    lines.push('');
    lines.push('Errors (figures missing from the table):');
    lines.push('');
    for (const e of figures.errors) lines.push(`- ${e.suite}: ${e.message.split('\n')[0]}`);
  }
  lines.push('');
  lines.push(`Sizes: ${Object.entries(info.sizes).map(([k, v]) => `${k}=${v}`).join(', ')}.`);
  lines.push(`Tools: ${Object.entries(info.tools).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  lines.push('');
  return lines.join('\n');
}

/** A compact table for the terminal. */
export function renderText(figures: Figures): string {
  const rows = [['suite', 'figure', 'ours', 'baseline', 'ratio', 'target', 'met']];
  for (const f of figures.list) {
    rows.push([
      f.suite,
      f.label,
      fmt(f.ours, f.unit),
      f.baseline === null ? (f.baselineLabel || '—') : `${fmt(f.baseline, f.unit)} (${f.baselineLabel})`,
      f.ratio === null ? '—' : `${f.ratio.toFixed(2)}×`,
      targetText(f.target, f.unit),
      metText(f).replaceAll('*', ''),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.min(60, Math.max(...rows.map((r) => r[i]!.length))));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
