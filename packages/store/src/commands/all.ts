// Every drover-store command, in the order --help lists them, each loaded only when named:
// a plain command line loads its own module and what that uses, not all of them (~20 ms).
import type { Command } from './common.js';

export interface CommandEntry {
  /** The first word of the command. */
  name: string;
  load(): Promise<Command>;
}

// One line per command; each module owns its options and help text.
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'dump', load: async () => (await import('./nar.js')).dump },
  { name: 'restore', load: async () => (await import('./nar.js')).restore },
  { name: 'hash', load: async () => (await import('./hash.js')).hash },
  { name: 'convert-hash', load: async () => (await import('./hash.js')).convertHash },
  { name: 'add', load: async () => (await import('./add.js')).add },
  { name: 'add-fixed', load: async () => (await import('./add.js')).addFixed },
  { name: 'register-validity', load: async () => (await import('./register-validity.js')).registerValidityCommand },
  { name: 'query', load: async () => (await import('./query.js')).query },
  { name: 'export', load: async () => (await import('./export.js')).exportCommand },
  { name: 'import', load: async () => (await import('./export.js')).importCommand },
  { name: 'dump-db', load: async () => (await import('./db-tools.js')).dumpDb },
  { name: 'load-db', load: async () => (await import('./db-tools.js')).loadDb },
  { name: 'verify', load: async () => (await import('./db-tools.js')).verify },
  { name: 'failed', load: async () => (await import('./failed.js')).failed },
  { name: 'derivation', load: async () => (await import('./derivation.js')).derivation },
];

/** Every command module, for yargs (help, errors) and tests. */
export function loadAllCommands(): Promise<Command[]> {
  return Promise.all(COMMANDS.map((c) => c.load()));
}
