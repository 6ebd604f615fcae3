// `--format json`: JSON Lines, one event each; passthrough lines go to stderr.
import type { Source, TraceEvent } from './events.js';
import type { Output } from './output.js';
import type { TraceSink } from './sink.js';

/** The JSON text of one event: keys in the order the reader builds them (type, time, source, …). */
export function eventJson(ev: TraceEvent): string {
  return JSON.stringify(ev);
}

export class JsonRenderer implements TraceSink {
  private prefixActivity: string | null = null;
  private prefixDrv: string | null | undefined = undefined;
  private prefixPid: number | null = null;
  private prefixTime = -1;
  private prefixSource: Source | null = null;
  private prefix = Buffer.alloc(0);

  constructor(private readonly out: Output, private readonly passOut: Output) {}

  event(ev: TraceEvent): void {
    this.out.write(JSON.stringify(ev) + '\n');
  }

  passthrough(buf: Buffer, start: number, end: number): void {
    this.passOut.bytes(buf, start, end);
  }

  // The bytes of a log go out as they came, escaped at the byte level where needed; only the head
  // of the object is made, once per derivation and time stamp. The result is byte-identical to
  // event() on the same event.
  rawLog(source: Source, activity: string | null, drv: string | null, pid: number | null, buf: Buffer, start: number, end: number, time: number, line: boolean): void {
    if (drv !== this.prefixDrv || pid !== this.prefixPid || time !== this.prefixTime || source !== this.prefixSource || activity !== this.prefixActivity) {
      this.prefixActivity = activity;
      this.prefixDrv = drv;
      this.prefixPid = pid;
      this.prefixTime = time;
      this.prefixSource = source;
      const act = activity !== null ? `"activity":${JSON.stringify(activity)},` : '';
      this.prefix = Buffer.from(`{"type":"build-log","time":${JSON.stringify(time)},"source":${JSON.stringify(source)},${act}"drv":${JSON.stringify(drv)},"pid":${JSON.stringify(pid)},"text":"`);
    }
    this.out.bytes(this.prefix, 0, this.prefix.length);
    if (line) {
      this.out.bytes(buf, start, end);
      this.out.bytes(LINE_SUFFIX, 0, LINE_SUFFIX.length);
      return;
    }
    this.out.jsonBytes(buf, start, end);
    this.out.bytes(SUFFIX, 0, SUFFIX.length);
  }
}

const LINE_SUFFIX = Buffer.from('\\n"}\n');
const SUFFIX = Buffer.from('"}\n');
