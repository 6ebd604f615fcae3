// Build logs arrive marked `NAME> ` per line (drover-build -L); the protocol's log is the builder's own bytes.

/**
 * Removes a fixed prefix from the start of every line of a byte stream (drover-build -L
 * marks each log line with `NAME> `; the build log of the protocol is the builder's own bytes).
 */
export class PrefixStripper {
  private atLineStart = true;
  private pending: Buffer = Buffer.alloc(0);
  private readonly prefix: Buffer;
  constructor(prefix: string) {
    this.prefix = Buffer.from(prefix);
  }
  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (data.length > 0) {
      if (this.atLineStart) {
        const n = Math.min(data.length, this.prefix.length);
        if (data.subarray(0, n).equals(this.prefix.subarray(0, n))) {
          if (n < this.prefix.length) {
            this.pending = data;
            break;
          }
          data = data.subarray(n);
        }
        this.atLineStart = false;
        continue;
      }
      const nl = data.indexOf(10);
      if (nl < 0) {
        out.push(data);
        break;
      }
      out.push(data.subarray(0, nl + 1));
      data = data.subarray(nl + 1);
      this.atLineStart = true;
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}
