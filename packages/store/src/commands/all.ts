// Every drover-store command, in the order --help lists them.
import type { Command } from './common.js';
import { dump, restore } from './nar.js';
import { hash, convertHash } from './hash.js';
import { add, addFixed } from './add.js';
import { registerValidityCommand } from './register-validity.js';
import { query } from './query.js';
import { exportCommand, importCommand } from './export.js';
import { dumpDb, loadDb, verify } from './db-tools.js';
import { failed } from './failed.js';
import { derivation } from './derivation.js';
// One line per command module; each owns its options and help text.
export const COMMANDS: Command[] = [
  dump,
  restore,
  hash,
  convertHash,
  add,
  addFixed,
  registerValidityCommand, query, exportCommand, importCommand, dumpDb, loadDb, verify, failed,
  derivation,
];
