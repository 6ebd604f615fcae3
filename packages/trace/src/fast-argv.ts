// drover-trace's argv in its everyday forms, read without yargs (which costs ~75 ms of start-up).
import { FORMATS, type Format } from './run.js';

export interface TraceArgs {
  format?: Format;
  history?: string;
  logs: boolean;
  inputs: string[];
}

/**
 * `-f/--format F`, `--format=F`, `--history FILE`, `--history=FILE`, `--logs`, and inputs
 * (files, or `-`), each option at most once. Anything else, a mistake included (an unknown
 * option, a missing value, a format that does not exist, `--help`, `--`), is undefined: the
 * caller hands it to yargs, which explains or refuses it.
 */
export function parseFast(args: readonly string[]): TraceArgs | undefined {
  const out: TraceArgs = { logs: false, inputs: [] };
  const seen = new Set<string>();
  const once = (name: string): boolean => {
    if (seen.has(name)) return false;
    seen.add(name);
    return true;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-' || !a.startsWith('-')) {
      out.inputs.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    const inline = eq > 0 ? a.slice(eq + 1) : undefined;
    if (name === '--logs' && inline === undefined && once('logs')) {
      out.logs = true;
      continue;
    }
    const option = name === '-f' || name === '--format' ? 'format' : name === '--history' ? 'history' : undefined;
    if (!option || !once(option)) return undefined;
    const value = inline ?? args[++i];
    // A value that looks like an option is a mistake yargs words better.
    if (value === undefined || value === '' || (inline === undefined && value.startsWith('-'))) return undefined;
    if (option === 'format') {
      if (!(FORMATS as readonly string[]).includes(value)) return undefined;
      out.format = value as Format;
    } else {
      out.history = value;
    }
  }
  return out;
}
