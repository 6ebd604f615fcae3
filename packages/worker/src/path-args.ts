// DRV arguments: given on the command line, or `-` alone to read them from stdin, one a line.
import { UsageError } from '@drover/store';

export async function readPathArgs(args: readonly string[], stdin: AsyncIterable<Buffer | string> = process.stdin): Promise<string[]> {
  if (args.length === 1 && args[0] === '-') {
    let text = '';
    for await (const c of stdin) text += c.toString();
    return text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
  }
  if (args.includes('-')) throw new UsageError("'-' (read derivations from stdin) must be the only argument");
  return [...args];
}
