// Turns a lazy sequence of layer entries into a tar byte stream with tar-stream's
// packer, holding only a bounded amount of the layer in memory at any time.
//
// tar-stream's packer is a streamx stream. File contents respect its
// backpressure, but directory and symlink headers are pushed regardless of
// whether anyone reads, so a layer made only of those (a symlink forest) would
// otherwise be buffered whole. The bridge below reads the packer on demand for
// a node Readable and tells the producer when the packer has been read empty;
// the producer stops after a fixed number of unread entries until it has.

import { Readable } from 'node:stream';
import { pack as createPack } from 'tar-stream';
import type { Header, Pack } from 'tar-stream';
import type { FileEntry, LayerEntry } from './entry.ts';
import { PackError, StoreFileChangedError } from './errors.ts';
import { ReadAhead } from './read-ahead.ts';
import type { FileContents, ReadAheadOptions } from './read-ahead.ts';

const EPOCH = new Date(0);
// Ownership is numeric only: names would be looked up in whatever passwd the
// unpacker has, and Nix store files carry no meaningful owner anyway.
const OWNER = { uid: 0, gid: 0, uname: '', gname: '' } as const;
const SYMLINK_MODE = 0o777;
// Entries (headers of at most ~1.5 KiB each with PAX names) the packer may hold unread.
const MAX_UNREAD_ENTRIES = 256;

type EntryHeader = Partial<Header> & Pick<Header, 'name'>;
type Sink = ReturnType<Pack['entry']>;

export interface EntriesTarOptions {
  /** How far the store is read ahead of the tar (read-ahead.ts); the bytes do not depend on it. */
  readAhead?: ReadAheadOptions;
}

/** A node Readable of the tar of `entries`, ended by the tar end-of-archive marker. */
export function entriesTar(entries: AsyncIterable<LayerEntry>, opts: EntriesTarOptions = {}): Readable {
  const pack = createPack();
  const pacer = new Pacer();
  const out = bridge(pack, pacer);
  writeEntries(pack, new ReadAhead(entries, opts.readAhead), pacer).catch((err: unknown) => {
    pack.destroy(err instanceof Error ? err : new PackError(String(err)));
  });
  return out;
}

function bridge(pack: Pack, pacer: Pacer): Readable {
  let wanted = false;
  const pump = () => {
    wanted = true;
    while (wanted) {
      const chunk = pack.read() as Buffer | null;
      if (chunk === null) {
        // Waits for 'readable'; meanwhile the producer may add entries again.
        pacer.drained();
        return;
      }
      wanted = out.push(chunk);
    }
  };
  const out = new Readable({
    read: pump,
    destroy(err, callback) {
      pacer.close();
      // Stops the producer: its pending writes and next entry() fail.
      pack.destroy(err ?? undefined);
      callback(err);
    },
  });
  pack.on('readable', () => {
    if (wanted) pump();
  });
  pack.on('end', () => {
    pacer.close();
    out.push(null);
  });
  pack.on('error', (err: Error) => {
    pacer.close();
    out.destroy(err);
  });
  return out;
}

async function writeEntries(pack: Pack, entries: ReadAhead, pacer: Pacer): Promise<void> {
  try {
    for await (const { entry, contents } of entries) {
      if (entry.type === 'file') {
        await writeFile(pack, entry, contents);
      } else {
        await writeEntry(pack, header(entry)).done;
      }
      await pacer.entryWritten();
    }
  } finally {
    // Closes the files opened ahead when the tar fails or is abandoned.
    entries.close();
  }
  pack.finalize();
}

function header(entry: LayerEntry): EntryHeader {
  const fixed = { ...OWNER, mtime: EPOCH };
  switch (entry.type) {
    case 'directory':
      // tar-stream only adds the slash for a `typeflag` it is never given; tar readers expect it.
      return { ...fixed, type: 'directory', name: entry.name + '/', mode: entry.mode };
    case 'symlink':
      return { ...fixed, type: 'symlink', name: entry.name, mode: SYMLINK_MODE, linkname: entry.target };
    case 'file':
      return { ...fixed, type: 'file', name: entry.name, mode: entry.mode, size: entry.size };
  }
}

interface PendingEntry {
  sink: Sink;
  /** Settles once the entry is fully encoded into the packer, or it failed. */
  done: Promise<void>;
}

function writeEntry(pack: Pack, headers: EntryHeader): PendingEntry {
  let settle: (err?: unknown) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  // Awaited only on success paths; a failure is reported through the packer.
  done.catch(() => {});
  // Throws if the packer was already destroyed by the consumer.
  const sink = pack.entry(headers, (err) => settle(err));
  // The packer is destroyed with the same error and the bridge reports it there.
  sink.on('error', () => {});
  return { sink, done };
}

async function writeFile(pack: Pack, entry: FileEntry, contents: FileContents | undefined): Promise<void> {
  const { sink, done } = writeEntry(pack, header(entry));
  try {
    const read = contents ? await copyContents(contents, sink) : 0;
    if (read !== entry.size) throw new StoreFileChangedError(entry.fsPath, entry.size, read);
    sink.end(undefined);
    await done;
  } catch (err) {
    // Destroying the entry destroys the packer with this error.
    sink.destroy(err instanceof Error ? err : new PackError(String(err)));
    throw err;
  }
}

/** Copies the file into the entry at the pace the tar is read; returns the bytes read. */
async function copyContents(contents: FileContents, sink: Sink): Promise<number> {
  let read = 0;
  for (;;) {
    // Never more than the header promised, so a growing file cannot corrupt the archive.
    const chunk = await contents.next();
    if (chunk === undefined) return read;
    read += chunk.length;
    if (!sink.write(chunk)) await drained(sink);
  }
}

function drained(sink: Sink): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sink.destroying) {
      reject(new PackError('tar stream destroyed while writing an entry'));
      return;
    }
    const cleanup = () => {
      sink.off('drain', onDrain);
      sink.off('error', onError);
      sink.off('close', onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(new PackError('tar stream destroyed while writing an entry'));
    };
    sink.on('drain', onDrain);
    sink.on('error', onError);
    sink.on('close', onClose);
  });
}

/** Counts entries the consumer has not read yet and holds the producer back past a limit. */
class Pacer {
  private unread = 0;
  private closed = false;
  private waiters: Array<() => void> = [];

  entryWritten(): Promise<void> | undefined {
    this.unread += 1;
    if (this.closed || this.unread < MAX_UNREAD_ENTRIES) return undefined;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The consumer found the packer empty: everything written so far has been read. */
  drained(): void {
    this.unread = 0;
    this.wake();
  }

  /** The stream ended or was destroyed; the producer must not wait for a reader that is gone. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
