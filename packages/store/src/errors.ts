// The one error shape of drover: every failure a user can see carries its exit code.

/** Base of every error drover reports; `exitCode` is what the binary exits with. */
export class DroverError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad command line or malformed input: exit 2. The message names the input and the place. */
export class UsageError extends DroverError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 2, options);
  }
}

/** A NAR stream or tree that cannot be archived or restored as it is. */
export class NarFormatError extends DroverError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 2, options);
  }
}

/** A hash string that does not parse, or a hash that does not match. */
export class HashFormatError extends DroverError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** A store path or name that breaks Nix's rules. */
export class StorePathError extends DroverError {
  constructor(message: string) {
    super(message, 2);
  }
}

/**
 * A derivation (ATerm or JSON) that is malformed or inconsistent. Its message is one line:
 * the names and values it quotes may hold line breaks and tabs (env values and names do, and
 * a .drv escapes them), which are shown as `\xNN` as `shown` shows other control characters.
 */
export class DerivationFormatError extends DroverError {
  constructor(message: string) {
    super(message.replace(/[\n\t]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`), 2);
  }
}

/** The validity DB refused something, or is itself broken. */
export class StoreDbError extends DroverError {}

/** An export stream that is malformed: exit 2. */
export class ExportFormatError extends DroverError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 2, options);
  }
}

/** A write to standard output that failed (not EPIPE: a full disk, `> /dev/full`): results are lost, exit 1. */
export class StdoutWriteError extends DroverError {
  constructor(cause: Error) {
    super(`cannot write to standard output: ${cause.message}`, 1, { cause });
  }
}

/**
 * yargs' `.fail` handler for drover's CLIs: what yargs itself refuses (a missing value, an
 * unknown option: a YError, or only a message) is a usage error, exit 2; an error thrown
 * by a command's handler passes through with its own code.
 */
export function yargsFailure(msg: string | undefined, err: Error | undefined): never {
  if (err && err.name !== 'YError') throw err;
  // Some of yargs' messages run over lines ("Invalid values:\n  Argument: ..."): an error is one line.
  throw new UsageError((msg || err?.message || 'bad command line').replace(/\s*\n\s*/g, ' '));
}

/**
 * Runs a CLI's main and exits with the error's code; the only place that exits.
 * Unknown errors (bugs, I/O) print their message and exit 1.
 */
export async function runMain(tool: string, main: () => Promise<number | void>): Promise<never> {
  // A reader that went away (`| head`) ends the output, quietly, as it ends `cat`; without a
  // listener the write's EPIPE would be an uncaught error with a stack trace.
  // A command that owns stdout's errors (drover-hook-ssh serve's session) handles them itself.
  // Any other failure to write (a full disk, `> /dev/full`) loses results: it is an error,
  // exit 1, as `cat` makes it.
  let finished = false;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (process.stdout.listenerCount('error') > 1) return;
    finished = true;
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    process.stderr.write(`${tool}: error: ${shown(new StdoutWriteError(e).message)}\n`);
    process.exit(1);
  });
  // A command whose work stopped without settling (nothing left to wake it: a bug) would
  // otherwise leave with status 0, as if it had succeeded. ('beforeExit' is the loop running
  // dry; an explicit exit, such as yargs' after --help, does not emit it.)
  process.once('beforeExit', () => {
    if (finished) return;
    process.stderr.write(`${tool}: error: internal error: the command stopped before it finished\n`);
    process.exitCode = 1;
  });
  let code = 0;
  try {
    code = (await main()) ?? 0;
  } catch (err) {
    if (err instanceof DroverError) {
      process.stderr.write(`${tool}: error: ${shown(err.message)}\n`);
      code = err.exitCode;
    } else if (isEpipe(err)) {
      code = 0;
    } else {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`${tool}: error: ${shown(e?.message ?? String(err))}\n`);
      if (process.env.DROVER_DEBUG) process.stderr.write(`${e?.stack}\n`);
      code = 1;
    }
  }
  finished = true;
  process.exitCode = code;
  // Let stdout drain before leaving: a piped reader must get every line.
  await new Promise<void>((resolve) => {
    if (process.stdout.writableLength === 0) resolve();
    else process.stdout.once('drain', () => resolve());
  });
  // An error message longer than a pipe holds (one quoting a megabyte of input, say) is
  // written in the background: exiting before it drains would cut it, newline and all. A
  // reader of stderr that went away ends the wait as well.
  await new Promise<void>((resolve) => {
    if (process.stderr.writableLength === 0) return resolve();
    process.stderr.once('drain', resolve).once('error', resolve).once('close', resolve);
  });
  // A failed write to a file is reported on the next tick: it must not be outrun by the exit.
  await new Promise<void>((resolve) => setImmediate(resolve));
  process.exit(code);
}

/**
 * An error message as printed: messages quote their input, and an escape sequence, carriage
 * return or NUL in some input must not reach (and rewrite) the user's terminal. Line breaks
 * and tabs are drover's own layout.
 */
export function shown(message: string): string {
  return message.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function isEpipe(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'EPIPE';
}
