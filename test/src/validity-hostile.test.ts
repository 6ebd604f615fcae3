// Hostile input to register-validity, load-db and import: exit 2, a message naming the place, the store unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tempStore } from '@drover/store/testing';
import { drover, exportStream, fakeStorePath, makeChain, registrationText, snapshot, writeOnDisk } from './validity-helpers.js';

/** A store with a valid 3-path chain, to show that nothing about it changes. */
function seeded(t: { after(fn: () => void): void }) {
  const s = tempStore('drover-hostile-');
  t.after(s.cleanup);
  const base = makeChain(s.storeDir, 'base', 3, 64);
  assert.equal(drover(s.env, ['import'], exportStream(base)).code, 0);
  const state = () => ({ files: snapshot(s.storeDir), db: drover(s.env, ['dump-db']).stdout });
  return { s, base, before: state(), state };
}

function expectRejected(r: { code: number | null; stderr: string }, re: RegExp, what: string): void {
  assert.equal(r.code, 2, `${what}: exit code ${r.code}, stderr: ${r.stderr}`);
  assert.match(r.stderr, /^drover-store: error: /, what);
  assert.match(r.stderr, re, what);
}

test('import rejects hostile streams and leaves the store as it was', (t) => {
  const { s, base, before, state } = seeded(t);
  const fresh = makeChain(s.storeDir, 'fresh', 4, 200);
  fresh[0]!.references = [base[2]!.path];
  const good = exportStream(fresh);
  const nothing = fakeStorePath(s.storeDir, 'nothing', 'nothing');
  const outside = makeChain('/elsewhere/store', 'x', 1);
  const withRef = (ref: string) => {
    const c = makeChain(s.storeDir, 'dangling', 2);
    c[1]!.references = [ref];
    return exportStream(c);
  };
  // A NAR whose file declares 1 TiB of contents and then ends.
  const bomb = Buffer.from(good.subarray(0, good.indexOf(Buffer.from('contents')) + 8));
  const bombLen = Buffer.alloc(8);
  bombLen.writeBigUInt64LE(1n << 40n);
  const cases: [string, Buffer, RegExp][] = [
    ['truncated in a NAR', good.subarray(0, 100), /standard input: archive of entry 1: truncated/],
    ['truncated in a trailer', good.subarray(0, good.indexOf(Buffer.from('NIXE')) + 20), /standard input: truncated at byte \d+/],
    ['truncated before the end marker', good.subarray(0, good.length - 8), /standard input: truncated at byte \d+: expected an entry marker/],
    ['wrong stream magic', Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), good.subarray(8)]), /at byte 0: expected 1 \(a path follows\) or 0 \(end\), got 2/],
    ['wrong NAR magic', Buffer.from(good).fill(0x41, 16, 29), /archive of entry 1: at byte 8: not a Nix archive/],
    ['wrong trailer magic', Buffer.from(good).fill(0x41, good.indexOf(Buffer.from('NIXE')), good.indexOf(Buffer.from('NIXE')) + 4), /wrong export magic/],
    ['a path outside the store dir', exportStream(outside), /entry 1 \(trailer at byte \d+\): path: path '\/elsewhere\/store\/.*' is not in the store dir/],
    ['a reference to nothing', withRef(nothing), /entry 2 .*: reference '.*-nothing' of '.*' is neither valid nor earlier in the stream/],
    ['a reference to a later path', exportStream([...fresh].reverse()), /is neither valid nor earlier in the stream/],
    ['a NAR bomb', Buffer.concat([bomb, bombLen, Buffer.alloc(4096, 7)]), /file of 1099511627776 bytes declared at byte \d+ ends early/],
    ['trailing garbage', Buffer.concat([good, Buffer.from('junk')]), /trailing garbage after the end marker at byte \d+/],
    ['garbage', Buffer.from('hello, world\n'), /standard input: (at byte 0|truncated)/],
  ];
  for (const [what, input, re] of cases) {
    expectRejected(drover(s.env, ['import'], input), re, what);
    assert.deepEqual(state(), before, `${what}: the store changed`);
  }
  // And the good stream does go in.
  assert.equal(drover(s.env, ['import'], good).code, 0);
});

test('register-validity and load-db reject malformed or dangling registrations, registering nothing', (t) => {
  const { s, base, before, state } = seeded(t);
  const fresh = makeChain(s.storeDir, 'reg', 3, 10);
  writeOnDisk(fresh);
  const afterWrite = state();
  const missing = makeChain(s.storeDir, 'missing', 1);
  const good = registrationText(fresh);
  const dangling = registrationText([...fresh.slice(0, 2), { ...fresh[2]!, references: [fakeStorePath(s.storeDir, 'nope', 'nope')] }]);
  const cases: [string, string[], string, RegExp][] = [
    ['a malformed count', ['register-validity'], good.replace('\n0\n', '\nzero\n'), /standard input: line 3: expected the number of references/],
    ['a truncated entry', ['register-validity'], good.slice(0, good.lastIndexOf('\n', good.length - 2) + 1), /unexpected end of input/],
    ['a path outside the store dir', ['register-validity'], `/elsewhere/${'0'.repeat(32)}-x\n\n0\n${good}`, /line 1: path: path '\/elsewhere\/.*' is not in the store dir/],
    ['a relative path', ['register-validity'], `x\n\n0\n`, /line 1: expected a store path/],
    ['a reference to nothing', ['register-validity'], dangling, /line \d+: reference '.*-nope' of '.*' \(entry at line \d+\) is not valid and not in the input/],
    ['a path missing on disk', ['register-validity'], good + registrationText(missing), /line 12: cannot register: '.*-missing-0' does not exist on disk/],
    ['a cycle', ['register-validity'], registrationText([{ ...fresh[0]!, references: [fresh[1]!.path] }, fresh[1]!]), /cycle detected/],
    ['a bad hash with --hash-given', ['register-validity', '--hash-given'], `${fresh[0]!.path}\nnothex\n10\n\n0\n`, /line 2: bad NAR hash/],
    ['a bad size in load-db', ['load-db'], `${fresh[0]!.path}\n${'a'.repeat(64)}\n1e9\n\n0\n`, /line 3: expected the NAR size/],
    ['a dangling reference in load-db', ['load-db'], registrationText([{ ...fresh[2]!, references: [base[0]!.path + 'x'] }], true), /line 6: reference '.*-base-0x' of '.*-reg-2' \(entry at line 1\) is not valid and not in the input/],
  ];
  for (const [what, args, input, re] of cases) {
    expectRejected(drover(s.env, args, input), re, what);
    assert.deepEqual(state(), afterWrite, `${what}: the store changed`);
  }
  assert.notDeepEqual(afterWrite, before);
  assert.equal(drover(s.env, ['register-validity'], good).code, 0);
});

test('a batch large enough for the hashing threads is refused with every file untouched (modes included)', (t) => {
  const { s, state } = seeded(t);
  // Past the pool's threshold, so threads hash (and would canonicalise) while the checks run.
  const many = makeChain(s.storeDir, 'many', 2500, 16);
  writeOnDisk(many);
  const afterWrite = state();
  const last = many[many.length - 1]!;
  const missing = makeChain(s.storeDir, 'gone', 1);
  // A .drv whose output path is not the one its contents give (only reading it tells).
  const out = `${s.storeDir}/${'a'.repeat(32)}-bogus`;
  const drv = `${s.storeDir}/${'b'.repeat(32)}-bogus.drv`;
  fs.writeFileSync(drv, `Derive([("out","${out}","","")],[],[],"x86_64-linux","/bin/sh",[],[("builder","/bin/sh"),("name","bogus"),("out","${out}"),("system","x86_64-linux")])`);
  const afterDrv = state();
  const cases: [string, string, RegExp][] = [
    ['a reference to nothing, last', registrationText([...many.slice(0, -1), { ...last, references: [fakeStorePath(s.storeDir, 'nope', 'nope')] }]), /is not valid and not in the input/],
    ['a path missing on disk, last', registrationText([...many, ...missing]), /'.*-gone-0' does not exist on disk/],
    ['a lying .drv, last', `${registrationText(many)}${drv}\n\n0\n`, /line \d+: derivation '.*-bogus.drv' has incorrect output 'out'/],
  ];
  for (const [what, input, re] of cases) {
    expectRejected(drover(s.env, ['register-validity'], input), re, what);
    assert.deepEqual(state(), afterDrv, `${what}: the store changed`);
  }
  assert.notDeepEqual(afterDrv, afterWrite);
  assert.equal(drover(s.env, ['register-validity'], registrationText(many)).code, 0);
  // Whether the hashing pass or the pass after it made each one read-only, every one is.
  for (const p of many) {
    const st = fs.statSync(p.path);
    assert.equal(st.mode & 0o7777, 0o444, p.path);
    assert.equal(st.mtimeMs, 1000, p.path);
  }
});
