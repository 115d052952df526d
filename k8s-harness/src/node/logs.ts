// Container logs in the CRI file format the kubelet reads (`<RFC3339Nano> <stream> <F|P> <text>`),
// one file per container instance, and the reading side of `kubectl logs`.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/** A writable for one stream (stdout or stderr) of a container, appending CRI lines to `file`. */
export function criWriter(file: fs.WriteStream, stream: 'stdout' | 'stderr'): Writable {
  let partial = '';
  const line = (text: string, tag: 'F' | 'P') => file.write(`${new Date().toISOString()} ${stream} ${tag} ${text}\n`);
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const text = partial + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) line(l, 'F');
      // Very long lines are cut, as the runtime does at 16 KiB.
      while (partial.length > 16_384) {
        line(partial.slice(0, 16_384), 'P');
        partial = partial.slice(16_384);
      }
      callback();
    },
    final(callback) {
      if (partial) line(partial, 'P');
      partial = '';
      callback();
    },
  });
}

export interface LogLine {
  time: string;
  stream: string;
  full: boolean;
  text: string;
}

export function parseCriLine(raw: string): LogLine | undefined {
  const match = /^(\S+) (stdout|stderr) ([FP]) (.*)$/s.exec(raw);
  if (!match) return undefined;
  return { time: match[1]!, stream: match[2]!, full: match[3] === 'F', text: match[4]! };
}

export interface LogQuery {
  tailLines?: number;
  sinceTime?: number;
  timestamps?: boolean;
  limitBytes?: number;
}

/** What `kubectl logs` prints for these lines: the text, newline-terminated for full lines, optionally stamped. */
export function renderLogs(lines: readonly LogLine[], query: LogQuery): string {
  let chosen = lines.filter((l) => query.sinceTime === undefined || Date.parse(l.time) >= query.sinceTime);
  if (query.tailLines !== undefined) chosen = query.tailLines <= 0 ? [] : chosen.slice(-query.tailLines);
  let out = chosen.map((l) => `${query.timestamps ? `${l.time} ` : ''}${l.text}${l.full ? '\n' : ''}`).join('');
  if (query.limitBytes !== undefined) out = Buffer.from(out).subarray(0, query.limitBytes).toString();
  return out;
}

function parseCriText(text: string): LogLine[] {
  return text.split('\n').flatMap((raw) => {
    const line = raw ? parseCriLine(raw) : undefined;
    return line ? [line] : [];
  });
}

export async function readLogFile(file: string): Promise<LogLine[]> {
  try {
    return parseCriText(await fsp.readFile(file, 'utf8'));
  } catch {
    return [];
  }
}

/** The last lines of a log, for terminationMessagePolicy FallbackToLogsOnError (80 lines, 2 KiB). */
export async function logTail(file: string): Promise<string> {
  const text = renderLogs(await readLogFile(file), { tailLines: 80 });
  const bytes = Buffer.from(text);
  return bytes.length > 2048 ? bytes.subarray(bytes.length - 2048).toString() : text;
}

/**
 * Follows a log file: writes what is there (per `query`), then new lines as they are appended,
 * until `done()` says the container instance has ended and the file is drained, or `signal` aborts.
 */
export async function followLog(
  file: string,
  query: LogQuery,
  write: (text: string) => void,
  done: () => boolean,
  signal: AbortSignal,
): Promise<void> {
  // Where following starts is where this read ended, so a line appended meanwhile is not skipped;
  // a line still being written is completed by the following.
  const decoder = new StringDecoder('utf8');
  let content: Buffer;
  try {
    content = await fsp.readFile(file);
  } catch {
    content = Buffer.alloc(0);
  }
  let offset = content.length;
  const text = decoder.write(content);
  const complete = text.lastIndexOf('\n') + 1;
  write(renderLogs(parseCriText(text.slice(0, complete)), query));
  let pending = text.slice(complete);
  while (!signal.aborted) {
    const finished = done();
    let size = offset;
    try {
      size = (await fsp.stat(file)).size;
    } catch {
      // not created yet
    }
    if (size > offset) {
      const handle = await fsp.open(file, 'r');
      try {
        const buffer = Buffer.alloc(size - offset);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        offset += bytesRead;
        pending += decoder.write(buffer.subarray(0, bytesRead));
      } finally {
        await handle.close();
      }
      const raws = pending.split('\n');
      pending = raws.pop() ?? '';
      write(renderLogs(parseCriText(raws.join('\n')), { timestamps: query.timestamps ?? false }));
      continue;
    }
    if (finished) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
