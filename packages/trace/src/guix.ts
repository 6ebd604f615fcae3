// Guix's `@ build-log PID LEN` framing: a header line followed by exactly LEN raw bytes of build output.
import { StringDecoder } from 'node:string_decoder';

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
 * one decoder per PID joins them again, and turns invalid bytes into U+FFFD.
 */
export class GuixLogDecoders {
  private readonly decoders = new Map<number, StringDecoder>();

  write(pid: number, bytes: Buffer): string {
    let d = this.decoders.get(pid);
    if (!d) {
      d = new StringDecoder('utf8');
      this.decoders.set(pid, d);
    }
    return d.write(bytes);
  }

  /** Bytes of an unfinished character left when the PID's build ends (as U+FFFD). */
  end(pid: number): string {
    const d = this.decoders.get(pid);
    if (!d) return '';
    this.decoders.delete(pid);
    return d.end();
  }

  pids(): number[] {
    return [...this.decoders.keys()];
  }
}
