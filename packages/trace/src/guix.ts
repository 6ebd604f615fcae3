// Guix's `@ build-log PID LEN` framing: a header line followed by exactly LEN raw bytes of build output.

/** Largest chunk text held before it is handed on, so a huge LEN never grows memory. */
export const LOG_TEXT_CAP = 64 * 1024;

export function parseBuildLogHeader(rest: string): { pid: number; length: number } | string {
  const m = /^(\d+) (\d+)$/.exec(rest);
  if (!m) return '@ build-log needs PID and LEN';
  const pid = Number(m[1]);
  const length = Number(m[2]);
  if (!Number.isSafeInteger(pid) || !Number.isSafeInteger(length)) return '@ build-log PID or LEN out of range';
  return { pid, length };
}

/**
 * The bytes of one build's output arrive in chunks whose boundaries may split a UTF-8 character;
 * per PID the bytes of an unfinished character are carried into the next chunk. Invalid bytes
 * become U+FFFD.
 */
export class GuixLogDecoders {
  private readonly carry = new Map<number, Buffer>();

  /** True when the PID has no unfinished character waiting, so valid bytes are the text as they are. */
  clean(pid: number): boolean {
    return !this.carry.has(pid);
  }

  write(pid: number, bytes: Buffer): string {
    const before = this.carry.get(pid);
    const data = before ? Buffer.concat([before, bytes]) : bytes;
    const cut = incompleteTail(data);
    if (cut < data.length) this.carry.set(pid, Buffer.from(data.subarray(cut)));
    else this.carry.delete(pid);
    return data.toString('utf8', 0, cut);
  }

  /** Bytes of an unfinished character left when the PID's output ends (as U+FFFD). */
  end(pid: number): string {
    const rest = this.carry.get(pid);
    this.carry.delete(pid);
    return rest ? rest.toString('utf8') : '';
  }

  pids(): number[] {
    return [...this.carry.keys()];
  }
}

/** Where a trailing, not yet complete UTF-8 sequence starts (data.length when there is none). */
export function incompleteTail(data: Buffer): number {
  const end = data.length;
  let p = end - 1;
  // At most three continuation bytes can precede the end of an unfinished four-byte character.
  while (p >= 0 && p >= end - 3 && (data[p]! & 0xc0) === 0x80) p--;
  if (p < 0) return end;
  const lead = data[p]!;
  const need = lead >= 0xf0 && lead <= 0xf4 ? 4 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xc2 && lead <= 0xdf ? 2 : 1;
  return need > 1 && end - p < need ? p : end;
}
