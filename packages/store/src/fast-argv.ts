// A fast path past yargs for plain command lines: yargs costs ~65 ms to load, more than
// hashing 100 MB, so drover-store reads each command's options from its yargs builder and
// parses plain command lines with node:util's parseArgs. Anything unusual (help, an unknown
// flag, a missing argument, a builder feature not recorded here) goes to yargs, which then
// parses it and gives its own messages; the fast path never reports an error itself.
import { parseArgs } from 'node:util';
import type { Command } from './commands/common.js';

interface OptionSpec {
  type?: string;
  alias?: string | string[];
  default?: unknown;
  choices?: readonly unknown[];
  array?: boolean;
  demandOption?: boolean | string;
}

/** Thrown inside the recorder: this command line is yargs' to parse. */
class NotFast extends Error {}

interface Recorded {
  options: Map<string, OptionSpec>;
  positionals: Map<string, OptionSpec>;
  checks: ((argv: Record<string, unknown>) => unknown)[];
}

/** Stands in for yargs while a builder runs, writing down its options. */
function record(builder: Command['builder']): Recorded {
  const rec: Recorded = { options: new Map(), positionals: new Map(), checks: [] };
  const known = new Set(['type', 'alias', 'default', 'choices', 'array', 'demandOption', 'describe', 'description', 'desc', 'hidden']);
  const checkSpec = (spec: OptionSpec) => {
    for (const k of Object.keys(spec)) if (!known.has(k)) throw new NotFast(k);
    if (spec.type !== undefined && !['string', 'boolean', 'number'].includes(spec.type)) throw new NotFast(spec.type);
  };
  const y: Record<string, unknown> = {
    option(name: string, spec: OptionSpec) {
      checkSpec(spec);
      rec.options.set(name, spec);
      return y;
    },
    positional(name: string, spec: OptionSpec) {
      checkSpec(spec);
      rec.positionals.set(name, spec);
      return y;
    },
    check(fn: (argv: Record<string, unknown>) => unknown) {
      rec.checks.push(fn);
      return y;
    },
  };
  const proxy = new Proxy(y, {
    get(target, prop) {
      if (prop in target) return target[prop as string];
      throw new NotFast(String(prop));
    },
  });
  // A command without a builder (load-db) has no options of its own.
  if (builder === undefined) return rec;
  if (typeof builder !== 'function') throw new NotFast('builder');
  (builder as (y: unknown) => unknown)(proxy);
  return rec;
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** `query <paths..>` → [{name: 'paths', required: true, variadic: true}] */
function positionalsOf(command: string): { name: string; required: boolean; variadic: boolean }[] {
  return [...command.matchAll(/([<[])([\w-]+)(\.\.)?[>\]]/g)].map((m) => ({ name: m[2]!, required: m[1] === '<', variadic: !!m[3] }));
}

export interface FastParse {
  command: Command;
  argv: Record<string, unknown>;
}

/**
 * Where the command word stands in a plain command line (after any global options), or
 * undefined when the line is yargs' to parse (help, version, an option that is not global).
 */
function commandAt(args: readonly string[], globals: Record<string, OptionSpec>): number | undefined {
  if (args.some((a) => a === '--help' || a === '-h' || a === '--version' || a === '--')) return undefined;
  let i = 0;
  while (i < args.length && args[i]!.startsWith('--')) {
    const name = args[i]!.slice(2).split('=')[0]!;
    if (!(name in globals)) return undefined;
    if (!args[i]!.includes('=')) i++;
    i++;
  }
  return i < args.length ? i : undefined;
}

/** The command a plain command line names, for loading just that command's module. */
export function commandName(args: readonly string[], globals: Record<string, OptionSpec>): string | undefined {
  const at = commandAt(args, globals);
  return at === undefined ? undefined : args[at];
}

/**
 * Parses `args` for one of `commands` with the global options, or returns undefined when
 * yargs should: the caller then runs yargs on the same arguments.
 */
export function parseFast(args: readonly string[], commands: readonly Command[], globals: Record<string, OptionSpec>): FastParse | undefined {
  const at = commandAt(args, globals);
  if (at === undefined) return undefined;
  const name = args[at];
  const command = commands.find((c) => typeof c.command === 'string' && c.command.split(' ')[0] === name);
  if (!command || typeof command.command !== 'string') return undefined;
  try {
    const rec = record(command.builder);
    const specs = new Map<string, OptionSpec>([...Object.entries(globals), ...rec.options]);
    const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
    for (const [n, s] of specs) {
      const aliases = s.alias === undefined ? [] : Array.isArray(s.alias) ? s.alias : [s.alias];
      if (aliases.some((a) => a.length !== 1)) return undefined;
      options[n] = { type: s.type === 'boolean' ? 'boolean' : 'string', ...(aliases[0] ? { short: aliases[0] } : {}), ...(s.array ? { multiple: true } : {}) };
    }
    const parsed = parseArgs({ args: [...args.slice(0, at), ...args.slice(at + 1)], options, allowPositionals: true, strict: true });
    const argv: Record<string, unknown> = { _: [name], $0: 'drover-store' };
    for (const [n, s] of specs) {
      let v: unknown = (parsed.values as Record<string, unknown>)[n];
      if (v === undefined) v = s.default;
      if (v === undefined) {
        if (s.demandOption) return undefined;
        continue;
      }
      if (s.type === 'number') {
        v = Array.isArray(v) ? v.map(Number) : Number(v);
        if ([v].flat().some((x) => Number.isNaN(x))) return undefined;
      }
      if (s.choices && ![v].flat().every((x) => s.choices!.includes(x))) return undefined;
      argv[n] = v;
      argv[camel(n)] = v;
      const aliases = s.alias === undefined ? [] : Array.isArray(s.alias) ? s.alias : [s.alias];
      for (const a of aliases) argv[a] = v;
    }
    const words = [...parsed.positionals];
    for (const p of positionalsOf(command.command)) {
      const spec = rec.positionals.get(p.name) ?? {};
      const taken = p.variadic ? words.splice(0) : words.splice(0, 1);
      if (taken.length === 0) {
        if (p.required) return undefined;
        continue;
      }
      if (spec.choices && !taken.every((x) => spec.choices!.includes(x))) return undefined;
      const v = p.variadic || spec.array ? taken : taken[0];
      argv[p.name] = v;
      argv[camel(p.name)] = v;
    }
    if (words.length > 0) return undefined;
    for (const check of rec.checks) {
      try {
        if (check(argv) !== true) return undefined;
      } catch {
        return undefined;
      }
    }
    return { command, argv };
  } catch (e) {
    if (e instanceof NotFast || (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) return undefined;
    throw e;
  }
}

/**
 * The first option of a plain command line that neither its command nor the globals know
 * (as typed, without any `=value`), or undefined. yargs counts positionals before it checks
 * options, so in `query --references --bogus P` it takes P as --bogus's value and says
 * "Not enough non-option arguments": the unknown option is the mistake to name.
 */
export function unknownOption(args: readonly string[], commands: readonly Command[], globals: Record<string, OptionSpec>): string | undefined {
  const at = commandAt(args, globals);
  if (at === undefined) return undefined;
  const command = commands.find((c) => typeof c.command === 'string' && c.command.split(' ')[0] === args[at]);
  if (!command) return undefined;
  let rec: Recorded;
  try {
    rec = record(command.builder);
  } catch {
    return undefined;
  }
  const known = new Set<string>(['help', 'h']);
  for (const [n, s] of [...Object.entries(globals), ...rec.options]) {
    known.add(n);
    known.add(camel(n));
    for (const a of s.alias === undefined ? [] : [s.alias].flat()) known.add(a);
  }
  for (const a of args.slice(at + 1)) {
    if (a === '--') break;
    if (!a.startsWith('-') || a === '-' || /^-\d/.test(a)) continue;
    const name = a.startsWith('--') ? a.slice(2).split('=')[0]! : a.slice(1);
    const isKnown = a.startsWith('--') ? known.has(name) || (name.startsWith('no-') && known.has(name.slice(3))) : [...name].every((c) => known.has(c));
    if (!isKnown) return a.split('=')[0];
  }
  return undefined;
}
