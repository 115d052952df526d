// What goes into a layer, independent of how it is encoded: the walkers produce
// these, the tar writer turns them into headers with the fixed metadata.

/** Names have no leading `/` and no trailing `/`; the writer marks directories. */
export interface DirectoryEntry {
  type: 'directory';
  name: string;
  mode: number;
}

export interface SymlinkEntry {
  type: 'symlink';
  name: string;
  target: string;
}

export interface FileEntry {
  type: 'file';
  name: string;
  mode: number;
  /** Size from lstat; the writer fails if the file does not have exactly this many bytes. */
  size: number;
  /** Where to read the contents from on this machine. */
  fsPath: string;
}

export type LayerEntry = DirectoryEntry | SymlinkEntry | FileEntry;
