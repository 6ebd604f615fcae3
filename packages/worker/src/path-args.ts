// DRV arguments: given on the command line, or `-` alone to read them from stdin, one a line.
import { UsageError } from '@drover/store';

export interface PathArgs {
  paths: string[];
  /**
   * Where each path came from, for error messages (`standard input: line 3`); undefined for argv,
   * where the path quoted in the message is place enough.
   */
  places?: string[];
}

export async function readPathArgs(args: readonly string[], stdin: AsyncIterable<Buffer | string> = process.stdin): Promise<PathArgs> {
  if (args.length === 1 && args[0] === '-') {
    // Bytes first: a character split between two chunks must not turn into two U+FFFD.
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
    const paths: string[] = [];
    const places: string[] = [];
    Buffer.concat(chunks)
      .toString('utf8')
      .split('\n')
      .forEach((l, i) => {
        const p = l.trim();
        if (p === '') return;
        paths.push(p);
        places.push(`standard input: line ${i + 1}`);
      });
    return { paths, places };
  }
  if (args.includes('-')) throw new UsageError("'-' (read derivations from stdin) must be the only argument");
  return { paths: [...args] };
}
