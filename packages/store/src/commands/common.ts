// What every drover-store command shares: global options, the store they name, output.
import fs from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { fdChunks } from '../fd-chunks.js';
import type { Store } from '../store.js';
import type { DbOpenMode } from '../db.js';
import { DroverError, StdoutWriteError, StoreDbError, UsageError } from '../errors.js';

export interface GlobalArgs {
  'store-dir'?: string;
  'state-dir'?: string;
}

/** A command module over the global options. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Command = CommandModule<GlobalArgs, any>;

/**
 * Declares a command whose handler sees its arguments typed as `A`: yargs' own inference
 * does not survive being put in a list of modules, so the builder's options are restated.
 */
export function defineCommand<A>(c: {
  command: string | string[];
  describe: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  builder?: (y: Argv<GlobalArgs>) => Argv<any>;
  handler: (argv: A & GlobalArgs) => void | Promise<void>;
}): Command {
  return c as unknown as Command;
}

/** Exit code a handler asks for (yargs handlers cannot return one). */
export const exitState = { code: 0 };

let storeModules: Promise<typeof import('../store.js')> | undefined;

/**
 * Starts loading the store's modules (the DB's among them), once: loaded only by commands
 * that open a store (dump, restore and hash never do), and a command that reads all of
 * stdin first starts this before, so both go on at once.
 */
export function loadStore(): Promise<typeof import('../store.js')> {
  return (storeModules ??= import('../store.js'));
}

/**
 * Runs `fn` with the store named by argv, closing its DB however `fn` ends. Commands that
 * only read pass `open` (`existing` or `or-empty`, see db.ts) so they never create a DB.
 */
export async function withStore<T>(argv: GlobalArgs, fn: (store: Store) => Promise<T> | T, opts: { open?: DbOpenMode } = {}): Promise<T> {
  const { Store } = await loadStore();
  const store = new Store({ storeDir: argv['store-dir'], stateDir: argv['state-dir'], open: opts.open });
  try {
    return await fn(store);
  } catch (e) {
    // SQLite's own words ("database disk image is malformed") do not say which file.
    const code = String((e as { code?: unknown }).code);
    if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB')) {
      throw new StoreDbError(`the validity DB ${path.join(store.stateDir, 'db', 'db.sqlite')} is damaged: ${(e as Error).message} (drover-store verify lists what SQLite finds)`, 1, { cause: e });
    }
    throw e;
  } finally {
    store.close();
  }
}

/** Prints results, one per line, in one write. */
export function out(lines: Iterable<string>): void {
  let s = '';
  for (const l of lines) s += `${l}\n`;
  if (s) process.stdout.write(s);
}

/**
 * All of stdin, as bytes. A file is read in one call; a pipe or a terminal in big slabs
 * (fd-chunks.ts): process.stdin's 64 KiB chunks cost 40 ms of a 100k registration's 18 MB
 * from a file, and 90 ms through a pipe.
 */
export async function readStdin(): Promise<Buffer> {
  let isFile = false;
  try {
    isFile = fs.fstatSync(0).isFile();
  } catch {
    /* no stdin: read it below and get the error there */
  }
  if (isFile) return fs.readFileSync(0);
  const chunks: Buffer[] = [];
  for await (const c of fdChunks(0)) chunks.push(c);
  return Buffer.concat(chunks);
}

export async function readStdinText(): Promise<string> {
  return (await readStdin()).toString('utf8');
}

/**
 * Path arguments, from argv or (a lone `-`) from stdin, one per line, blank lines ignored.
 * Those read from stdin keep their line, so an error about one says where it is.
 */
export class PathArgs {
  /** Where each resolved path was read (`standard input: line 3`), for stdin only. */
  private readonly placeOf = new Map<string, string>();
  constructor(
    readonly list: readonly string[],
    private readonly lines?: readonly number[],
  ) {}

  /** Each as the store path it names (resolveStorePath); an error names the stdin line. */
  resolved(storeDir: string, resolve: (storeDir: string, p: string) => string): string[] {
    return this.list.map((p, i) => {
      const place = this.lines ? `standard input: line ${this.lines[i]}` : undefined;
      try {
        const r = resolve(storeDir, p);
        if (place && !this.placeOf.has(r)) this.placeOf.set(r, place);
        return r;
      } catch (e) {
        throw place ? placed(e, place) : e;
      }
    });
  }

  /** Runs `fn`; an error about one of the resolved paths (its `path`) says where it was read. */
  async about<T>(fn: () => T | Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const place = this.placeOf.get(String((e as { path?: unknown }).path));
      throw place ? placed(e, place) : e;
    }
  }
}

/** `e` (its class, code and fields kept) with its message prefixed by where its path was read. */
function placed(e: unknown, place: string): unknown {
  if (e instanceof DroverError) e.message = `${place}: ${e.message}`;
  return e;
}

/**
 * Runs `fn`, which writes to fd 1 itself (not through process.stdout): a failed write there is
 * reported as runMain reports one to process.stdout. EPIPE (the reader left) passes as it is.
 */
export async function writingStdout<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const { code, syscall } = e as NodeJS.ErrnoException;
    if (code !== 'EPIPE' && (syscall === 'write' || syscall === 'sendfile')) {
      throw new StdoutWriteError(e as Error);
    }
    throw e;
  }
}

export async function pathsFrom(args: readonly string[]): Promise<PathArgs> {
  if (args.length === 1 && args[0] === '-') {
    const list: string[] = [];
    const lines: number[] = [];
    (await readStdinText()).split('\n').forEach((l, i) => {
      const p = l.trim();
      if (p.length === 0) return;
      list.push(p);
      lines.push(i + 1);
    });
    return new PathArgs(list, lines);
  }
  if (args.includes('-')) throw new UsageError("'-' (read paths from stdin) must be the only path argument");
  return new PathArgs([...args]);
}
