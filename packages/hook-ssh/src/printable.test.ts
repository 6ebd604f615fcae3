// Tests of how text from outside the hook is made safe to print on the stderr the scheduler reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { printable, printableLine } from './printable.js';

test('printable: later lines are indented, so none passes for a "# " reply or an "@ " trace line', () => {
  const s = printable('disk full\n# accept\r\n@ build-succeeded /s/x.drv /s/x');
  assert.equal(s, 'disk full\n  # accept\n  @ build-succeeded /s/x.drv /s/x');
  assert.deepEqual(s.split('\n').filter((l) => /^[#@] /.test(l)), []);
});

test('printable: escapes, bells, lone carriage returns and NULs become "?"; tabs and UTF-8 stay', () => {
  assert.equal(printable('a\x1b[2Jb\x07c\rd\0e\x9bf\tg é'), 'a?[2Jb?c\nd?e?f\tg é'.replace('\n', '\n  '));
});

test('printableLine: one line, its breaks joined with "; "', () => {
  assert.equal(printableLine('  first\r\n  second\n\nthird\x1b \n'), 'first; second; third?');
});
