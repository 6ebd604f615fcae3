// The hook's side of the build hook protocol: request lines in on stdin, `# WORD` replies out.
import { UsageError } from '@drover/store';

/** `AM_WILLING SYSTEM DRV_PATH FEATURES` from the scheduler. */
export interface HookRequest {
  /** A local build slot is free: the scheduler could build this itself right now. */
  amWilling: boolean;
  system: string;
  drvPath: string;
  requiredFeatures: string[];
}

export type HookReply = 'accept' | 'decline' | 'postpone';

/** A line from the scheduler that breaks the protocol: exit 2, naming the line. */
export class HookProtocolError extends UsageError {}

export function parseRequestLine(line: string, storeDir: string): HookRequest {
  const fields = line.split(' ');
  // FEATURES is empty when nothing is required, so the line then ends in a space.
  if (fields.length === 3) fields.push('');
  if (fields.length !== 4) {
    throw new HookProtocolError(`request line '${show(line)}' has ${fields.length} space-separated fields, expected 'AM_WILLING SYSTEM DRV_PATH FEATURES'`);
  }
  const [willing, system, drvPath, features] = fields as [string, string, string, string];
  if (willing !== '0' && willing !== '1') throw new HookProtocolError(`request line '${show(line)}': AM_WILLING '${show(willing)}' is not 0 or 1`);
  if (!/^[A-Za-z0-9_.+-]+$/.test(system)) throw new HookProtocolError(`request line '${show(line)}': SYSTEM '${show(system)}' is not a system name`);
  checkStorePath(drvPath, storeDir, `request line '${show(line)}': DRV_PATH`);
  if (!drvPath.endsWith('.drv')) throw new HookProtocolError(`request line '${show(line)}': DRV_PATH '${show(drvPath)}' does not end in .drv`);
  const requiredFeatures = features === '' ? [] : features.split(',');
  for (const f of requiredFeatures) {
    if (!/^[A-Za-z0-9_.+-]+$/.test(f)) throw new HookProtocolError(`request line '${show(line)}': feature '${show(f)}' is not a feature name`);
  }
  return { amWilling: willing === '1', system, drvPath, requiredFeatures: [...new Set(requiredFeatures)] };
}

/** The inputs or outputs line after `# accept`: store paths separated by spaces. */
export function parsePathsLine(line: string, storeDir: string, what: string): string[] {
  const paths = line.split(' ').filter((p) => p !== '');
  for (const p of paths) checkStorePath(p, storeDir, what);
  return [...new Set(paths)];
}

function checkStorePath(p: string, storeDir: string, what: string): void {
  const rest = p.startsWith(storeDir + '/') ? p.slice(storeDir.length + 1) : undefined;
  if (rest === undefined || !/^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]{1,211}$/.test(rest) || rest.slice(33).startsWith('.')) {
    throw new HookProtocolError(`${what} '${show(p)}' is not a store path in ${storeDir}`);
  }
}

/** The reply line; `# ` marks it apart from the hook's messages on the same pipe. */
export function replyLine(reply: HookReply): string {
  return `# ${reply}\n`;
}

function show(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 200 ? clean.slice(0, 197) + '...' : clean;
}

/**
 * Lines from a stream, one at a time, without reading ahead of what the caller asks for
 * beyond the stream's own buffering; `undefined` at end of input. A last line without `\n`
 * still counts (a scheduler may close stdin right after it).
 */
export class LineReader {
  private buf = '';
  private ended = false;
  private readonly it: AsyncIterator<Buffer | string>;
  constructor(input: AsyncIterable<Buffer | string>) {
    this.it = input[Symbol.asyncIterator]();
  }
  async next(): Promise<string | undefined> {
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        return line;
      }
      if (this.ended) {
        if (this.buf === '') return undefined;
        const line = this.buf;
        this.buf = '';
        return line;
      }
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else this.buf += typeof r.value === 'string' ? r.value : r.value.toString('utf8');
      if (this.buf.length > 64 * 1024 * 1024) throw new HookProtocolError('a request line is longer than 64 MiB');
    }
  }
}
