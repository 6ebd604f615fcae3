// Tests for the fast argv path: plain lines parse as yargs would, anything else goes to yargs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFast, unknownOption } from './fast-argv.js';
import { loadAllCommands } from './commands/all.js';
import { protectDash } from './stdin-dash.js';

const GLOBALS = { 'store-dir': { type: 'string' }, 'state-dir': { type: 'string' } };
const COMMANDS = await loadAllCommands();
const fast = (...args: string[]) => parseFast(protectDash(args), COMMANDS, GLOBALS);

test('plain command lines parse without yargs, with options, aliases, defaults and globals', () => {
  const h = fast('hash', '--type', 'md5', '--base32', 'a', 'b')!;
  assert.equal(h.argv._ && (h.argv._ as string[])[0], 'hash');
  assert.deepEqual(h.argv.paths, ['a', 'b']);
  assert.equal(h.argv.type, 'md5');
  assert.equal(h.argv.base32, true);
  assert.equal(fast('hash', 'x')!.argv.type, 'sha256', 'the default of --type');
  const a = fast('--store-dir', '/s', 'add', '--dry-run', 'x')!;
  assert.equal(a.argv['store-dir'], '/s');
  assert.equal(a.argv['dry-run'], true);
  assert.equal(a.argv.dryRun, true);
  assert.equal(fast('add', '--state-dir=/t', 'x')!.argv['state-dir'], '/t');
  assert.equal(fast('query', '-R', '/s/p')!.argv.requisites, true);
  assert.deepEqual(fast('add-fixed', '--recursive', 'sha1', 'p', 'q')!.argv.paths, ['p', 'q']);
  assert.equal(fast('add-fixed', 'sha1', 'p')!.argv.algo, 'sha1');
  // A command without options of its own (no builder) still takes the fast path.
  assert.equal(fast('--state-dir', '/t', 'load-db')!.argv['state-dir'], '/t');
});

test('help, unknown flags, missing or extra arguments, bad choices and subcommands go to yargs', () => {
  for (const args of [
    ['hash', '--help'],
    ['--help'],
    [],
    ['hash'],
    ['hash', '--nope', 'x'],
    ['convert-hash', '--to', 'base99', 'h'],
    ['convert-hash', 'h'],
    ['derivation', 'add'],
    ['dump', 'a', 'b'],
    ['nonsense', 'x'],
    ['--bogus', 'hash', 'x'],
  ]) {
    assert.equal(fast(...args), undefined, args.join(' '));
  }
});

test('unknownOption names the first option neither the command nor the globals know', () => {
  const unknown = (...args: string[]) => unknownOption(protectDash(args), COMMANDS, GLOBALS);
  assert.equal(unknown('query', '--references', '--bogus', '/s/p'), '--bogus');
  assert.equal(unknown('hash', '--bogus=1', 'x'), '--bogus');
  assert.equal(unknown('hash', '-q', 'x'), '-q');
  assert.equal(unknown('query', '-R', '--json', '/s/p', '-'), undefined, 'aliases, flags and - are known');
  assert.equal(unknown('--store-dir', '/s', 'add', '--dry-run', '--state-dir=/t', 'x'), undefined, 'globals are known');
  assert.equal(unknown('hash', '--', '--bogus'), undefined, 'after -- nothing is an option');
  assert.equal(unknown('nosuchcommand', '--bogus'), undefined);
});
