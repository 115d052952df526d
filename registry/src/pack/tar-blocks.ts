// Writes a layer's tar into fixed-size blocks, synchronously: headers are
// encoded in place and file contents are read from the store straight into the
// block, so no byte of the layer is copied on its way to the deflater. Runs on
// the tar thread (tar-thread.ts), where blocking reads hold up nobody.

import fs from 'node:fs';
import type { FileEntry, LayerEntry } from './entry.ts';
import { StoreFileChangedError, StoreReadError } from './errors.ts';
import { END_OF_ARCHIVE_SIZE, entryHeader, paddingAfter } from './tar-header.ts';

interface OpenFile {
  entry: FileEntry;
  fd: number;
  position: number;
}

export class TarBlockWriter {
  private readonly entries: Iterator<LayerEntry>;
  /** Bytes still to write before the next entry: a header, padding or the end of the archive. */
  private pending: Buffer | undefined;
  private pendingOffset = 0;
  private zeros = 0;
  private file: OpenFile | undefined;
  private entriesDone = false;
  private finished = false;

  constructor(entries: Iterable<LayerEntry>) {
    this.entries = entries[Symbol.iterator]();
  }

  /** True once the whole archive, end marker included, has been written. */
  get done(): boolean {
    return this.finished;
  }

  /**
   * Fills `block` with the next bytes of the tar and returns how many were
   * written: all of it, except for the archive's last block, which is never
   * full (`done` turns true only on a fill that runs out, so a tar ending on a
   * block boundary ends with an empty block). Throws the walk's
   * errors, StoreReadError and StoreFileChangedError; the writer is then closed.
   */
  fill(block: Buffer): number {
    try {
      return this.fillUnsafe(block);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Closes the file being read, if any; the writer must not be used again. */
  close(): void {
    this.finished = true;
    if (this.file) {
      const { fd } = this.file;
      this.file = undefined;
      closeQuietly(fd);
    }
  }

  private fillUnsafe(block: Buffer): number {
    let at = 0;
    while (at < block.length && !this.finished) {
      if (this.pending) {
        const copied = this.pending.copy(block, at, this.pendingOffset);
        at += copied;
        this.pendingOffset += copied;
        if (this.pendingOffset === this.pending.length) this.pending = undefined;
      } else if (this.file) {
        at += this.readInto(this.file, block, at);
      } else if (this.zeros > 0) {
        const n = Math.min(this.zeros, block.length - at);
        block.fill(0, at, at + n);
        at += n;
        this.zeros -= n;
      } else if (this.entriesDone) {
        this.finished = true;
      } else {
        this.nextEntry();
      }
    }
    return at;
  }

  private nextEntry(): void {
    const next = this.entries.next();
    if (next.done) {
      this.entriesDone = true;
      this.zeros = END_OF_ARCHIVE_SIZE;
      return;
    }
    const entry = next.value;
    // Opened before its header is written: a file that cannot be read fails the layer at its own entry.
    if (entry.type === 'file' && entry.size > 0) this.file = { entry, fd: openStoreFile(entry.fsPath), position: 0 };
    this.pending = entryHeader(entry);
    this.pendingOffset = 0;
  }

  /** Reads the next part of `file` into `block` at `at`; never past the size in its header. */
  private readInto(file: OpenFile, block: Buffer, at: number): number {
    const want = Math.min(file.entry.size - file.position, block.length - at);
    let read: number;
    try {
      read = fs.readSync(file.fd, block, at, want, file.position);
    } catch (err) {
      throw new StoreReadError(file.entry.fsPath, err);
    }
    // A file shorter than its lstat said: the archive would be corrupt, so the layer fails.
    if (read === 0) throw new StoreFileChangedError(file.entry.fsPath, file.entry.size, file.position);
    file.position += read;
    if (file.position === file.entry.size) {
      this.file = undefined;
      closeQuietly(file.fd);
      this.zeros = paddingAfter(file.entry.size);
    }
    return read;
  }
}

/** Store files are only read from: closing cannot lose data, so a failure to close changes nothing. */
function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {}
}

function openStoreFile(fsPath: string): number {
  try {
    return fs.openSync(fsPath, 'r');
  } catch (err) {
    throw new StoreReadError(fsPath, err);
  }
}
