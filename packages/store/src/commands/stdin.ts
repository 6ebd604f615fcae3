// Reading standard input: whole texts, and the `-` that stands for a list of paths on stdin.
import { pathsFrom } from './common.js';

export async function readStdinText(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * pathsFrom for a `<paths..>` positional. yargs (18) drops a lone `-` from positionals, so
 * a required list that arrives empty can only have been `-`: read the paths from stdin.
 */
export function argPaths(paths: readonly string[] | undefined): Promise<string[]> {
  return pathsFrom(paths === undefined || paths.length === 0 ? ['-'] : paths);
}
