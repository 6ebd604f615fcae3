// What every drover-store command shares: global options, the store they name, output.
import fs from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { fdChunks } from '../fd-chunks.js';
import type { Store } from '../store.js';
import type { DbOpenMode } from '../db.js';
import { UsageError } from '../errors.js';

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

/** Paths from argv; a lone `-` reads them from stdin, one per line (blank lines ignored). */
export async function pathsFrom(args: readonly string[]): Promise<string[]> {
  if (args.length === 1 && args[0] === '-') {
    return (await readStdinText()).split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  }
  if (args.includes('-')) throw new UsageError("'-' (read paths from stdin) must be the only path argument");
  return [...args];
}
