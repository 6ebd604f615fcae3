// One run of drover-trace: opens the inputs, feeds the reader, drives the chosen output, and
// returns the exit status (0, or 1 when the trace reported a failed build).
import { accessSync, constants, createReadStream, fstatSync, statSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { TraceUsageError } from './errors.js';
import { History } from './history.js';
import { Output } from './output.js';
import { TraceReader } from './reader.js';
import { JsonRenderer } from './render-json.js';
import { PlainRenderer } from './render-plain.js';
import { SummaryRenderer } from './render-summary.js';
import { TtyRenderer } from './render-tty.js';
import type { TraceSink } from './sink.js';
import { Tracker } from './tracker.js';

export const FORMATS = ['tty', 'plain', 'json', 'summary'] as const;
export type Format = (typeof FORMATS)[number];

export interface RunOptions {
  format?: Format;
  inputs?: string[];
  history?: string;
  /** Plain output also prints build log lines. */
  logs?: boolean;
  stdin?: Readable;
  stdout?: Writable & { isTTY?: boolean; columns?: number; rows?: number };
  stderr?: Writable;
  clock?: () => number;
  /** Milliseconds between tty redraws. */
  interval?: number;
}

type Renderer = TraceSink & { end(): void };

/**
 * Opens every named input up front, so a typo is a usage error before anything is read.
 * `processStdin`: `-` is this process's fd 0, which `< dir` makes a directory (Node reads that as
 * empty input, which would look like a trace without failures).
 */
function checkInputs(inputs: string[], processStdin: boolean): void {
  for (const name of inputs) {
    if (name === '-') {
      let isDir = false;
      try {
        isDir = processStdin && fstatSync(0).isDirectory();
      } catch {
        // No fd 0 to look at: reading it reports what is wrong.
      }
      if (isDir) throw new TraceUsageError('cannot read - (standard input): is a directory');
      continue;
    }
    try {
      accessSync(name, constants.R_OK);
      if (statSync(name).isDirectory()) throw new Error('is a directory');
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
      throw new TraceUsageError(`cannot read ${name}: ${why}`);
    }
  }
}

export async function runTrace(options: RunOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const stdin = options.stdin ?? process.stdin;
  const inputs = options.inputs && options.inputs.length > 0 ? options.inputs : ['-'];
  const format: Format = options.format ?? (stdout.isTTY ? 'tty' : 'plain');
  if (!FORMATS.includes(format)) throw new TraceUsageError(`unknown format '${String(format)}' (use ${FORMATS.join(', ')})`);
  checkInputs(inputs, options.stdin === undefined);

  const history = options.history ? await History.open(options.history) : null;
  const out = new Output(stdout);
  const err = new Output(stderr);
  const tracker = new Tracker(history);
  let reader: TraceReader | null = null;
  const now = (): number => reader?.elapsed() ?? 0;

  let renderer: Renderer;
  let tty: TtyRenderer | null = null;
  switch (format) {
    case 'json': {
      const json = new JsonRenderer(out, err);
      renderer = Object.assign(json, { end: () => {} });
      break;
    }
    case 'plain':
      renderer = new PlainRenderer(out, tracker, { logs: options.logs ?? false });
      break;
    case 'summary':
      renderer = new SummaryRenderer(out, err, tracker);
      break;
    case 'tty':
      tty = new TtyRenderer(out, tracker, {
        now,
        columns: () => stdout.columns ?? 80,
        rows: () => stdout.rows ?? 24,
        ...(options.interval !== undefined ? { interval: options.interval } : {}),
      });
      renderer = tty;
      break;
  }

  reader = new TraceReader({
    sink: renderer,
    ...(options.clock ? { clock: options.clock } : {}),
    warn: (message) => err.write(`drover-trace: warning: ${message}\n`),
  });

  let interrupted = false;
  /** Stdout was closed (`| head`) before the input ended: the rest is not read. */
  let abandoned = false;
  let current: Readable | null = null;
  // Ctrl-C ends the reading, not the output: what was seen is still shown. A second one exits.
  const onSigint = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    current?.destroy();
  };
  process.on('SIGINT', onSigint);
  tty?.start();
  try {
    for (const name of inputs) {
      if (interrupted) break;
      if (out.closed) {
        abandoned = true;
        break;
      }
      reader.beginInput(name);
      const stream = name === '-' ? stdin : createReadStream(name, { highWaterMark: 1 << 20 });
      current = stream;
      try {
        for await (const chunk of stream) {
          reader.push(chunk as Buffer);
          out.flush();
          err.flush();
          await out.drain();
          await err.drain();
          if (interrupted) break;
          if (out.closed) {
            abandoned = true;
            break;
          }
        }
      } catch (e) {
        if (!interrupted) throw new TraceUsageError(`cannot read ${name}: ${(e as Error).message}`);
      }
      current = null;
      // Where the reading stopped is no end of a line, nor of the builds still running.
      if (abandoned) break;
      reader.endInput();
    }
    if (abandoned) reader.abandon();
    else reader.finish();
    tracker.lastTime = Math.max(tracker.lastTime, reader.time);
    renderer.end();
    out.flush();
    err.flush();
    await out.drain();
    await err.drain();
    if (history) history.record(History.rowsOf(tracker.builds.values()));
  } finally {
    process.off('SIGINT', onSigint);
    history?.close();
    tty?.stop();
  }
  if (interrupted) return 130;
  return reader.failedBuilds > 0 ? 1 : 0;
}
