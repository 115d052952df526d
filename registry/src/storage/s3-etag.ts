// The ETag an S3 server must answer for bytes uploaded the way @aws-sdk/lib-storage uploads them:
// the hex MD5 of the body for one PutObject, or, for a multipart upload, the MD5 of the parts'
// binary MD5s followed by "-<parts>". lib-storage cuts a stream into parts of exactly partSize
// bytes (the last one shorter) and uses a single PutObject when everything fits in one part, so
// the expected value can be computed while the bytes go out, and compared afterwards: the
// staging object is verified against what we sent before it is copied under its digest.
import { createHash, type Hash } from 'node:crypto';

export class UploadEtag {
  private readonly partSize: number;
  private readonly partDigests: Buffer[] = [];
  private current: Hash = createHash('md5');
  private inPart = 0;
  size = 0;

  constructor(partSize: number) {
    this.partSize = partSize;
  }

  update(chunk: Buffer): void {
    this.size += chunk.length;
    let rest = chunk;
    while (rest.length > 0) {
      // A full part is closed only once more bytes follow: lib-storage keeps a body of exactly
      // partSize bytes in a single PutObject.
      if (this.inPart === this.partSize) this.closePart();
      const take = Math.min(rest.length, this.partSize - this.inPart);
      this.current.update(rest.subarray(0, take));
      this.inPart += take;
      rest = rest.subarray(take);
    }
  }

  private closePart(): void {
    this.partDigests.push(this.current.digest());
    this.current = createHash('md5');
    this.inPart = 0;
  }

  /** The ETag without the quotes S3 puts around it. */
  value(): string {
    const last = this.current.copy().digest();
    if (this.partDigests.length === 0) return last.toString('hex');
    const parts = [...this.partDigests, last];
    return `${createHash('md5').update(Buffer.concat(parts)).digest('hex')}-${parts.length}`;
  }
}

/** S3 answers ETags in double quotes. */
export function unquoteEtag(etag: string | undefined): string | undefined {
  return etag?.replace(/^"(.*)"$/, '$1');
}
