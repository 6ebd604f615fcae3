// Tests of the machines file parser: both layouts, URI forms, and every kind of bad line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { parseMachines, loadMachines, machinesFilePath, MachinesFileError } from './machines.js';
import { hookSettings } from './settings.js';

const KEY_LINE = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb4m3yqRk6kqW8v1a2s3d4f5g6h7j8k9l0z1x2c3v4b root@box';
const KEY_B64 = Buffer.from(KEY_LINE).toString('base64');

test('modern 8-field line: every field lands where Nix puts it', () => {
  const [m] = parseMachines(
    `ssh://builder@big.example:2222 x86_64-linux,i686-linux /keys/id 8 2.5 kvm,big-parallel benchmark ${KEY_B64}\n`,
    'f',
  );
  assert.ok(m);
  assert.equal(m.uri, 'ssh://builder@big.example:2222');
  assert.equal(m.sshHost, 'builder@big.example');
  assert.equal(m.port, 2222);
  assert.deepEqual(m.systems, ['x86_64-linux', 'i686-linux']);
  assert.equal(m.sshKey, '/keys/id');
  assert.equal(m.maxJobs, 8);
  assert.equal(m.speedFactor, 2.5);
  assert.deepEqual(m.supportedFeatures, ['kvm', 'big-parallel']);
  assert.deepEqual(m.mandatoryFeatures, ['benchmark']);
  assert.equal(m.hostKey, KEY_LINE.split(' ').slice(0, 2).join(' '));
  assert.equal(m.engine, 'drover');
  assert.equal(m.line, 1);
});

test('old 4-field line, dashes, comments and blank lines', () => {
  const ms = parseMachines(
    ['# build farm', '', 'root@old x86_64-linux /root/.ssh/id 2   # trailing comment', '  ', 'plain - - - - - - -', 'solo'].join('\n'),
  );
  assert.equal(ms.length, 3);
  assert.equal(ms[0]!.uri, 'root@old');
  assert.equal(ms[0]!.user, 'root');
  assert.equal(ms[0]!.maxJobs, 2);
  assert.equal(ms[0]!.speedFactor, 1);
  assert.equal(ms[0]!.line, 3);
  assert.deepEqual(ms[1]!.systems, []);
  assert.equal(ms[1]!.sshKey, undefined);
  assert.equal(ms[1]!.maxJobs, 1);
  assert.equal(ms[1]!.hostKey, undefined);
  assert.equal(ms[2]!.uri, 'solo');
  assert.equal(ms[2]!.line, 6);
});

test('URI options: remote-program, engine, timeouts, ssh-key; IPv6 hosts', () => {
  const [a, b] = parseMachines(
    'ssh://h?remote-program=/opt/drover/bin:/usr/local/bin&engine=nix&connect-timeout=3&stall-timeout=7.5\n' +
      'ssh://[::1]:22?ssh-key=/k x86_64-linux\n' +
      'ssh://c?engine=drover-cli\n',
  );
  assert.equal(parseMachines('ssh://c?engine=drover-cli')[0]!.engine, 'drover-cli');
  assert.equal(parseMachines('ssh://c')[0]!.engine, 'drover');
  assert.equal(parseMachines('ssh://c')[0]!.agent, true);
  assert.equal(parseMachines('ssh://c?agent=0')[0]!.agent, false);
  assert.deepEqual(a!.remotePath, ['/opt/drover/bin', '/usr/local/bin']);
  assert.equal(a!.engine, 'nix');
  assert.equal(a!.connectTimeout, 3);
  assert.equal(a!.stallTimeout, 7.5);
  assert.equal(a!.uri, 'ssh://h');
  assert.equal(b!.host, '::1');
  assert.equal(b!.port, 22);
  assert.equal(b!.sshKey, '/k');
  assert.equal(b!.uri, 'ssh://[::1]:22');
  assert.notEqual(a!.id, b!.id);
  assert.match(a!.id, /^[A-Za-z0-9@._-]+$/);
});

test('ids are stable and distinct per user/host/port, and safe as file names', () => {
  const ms = parseMachines('ssh://a@h:1\nssh://a@h:2\nssh://b@h:1\nh\n');
  assert.equal(new Set(ms.map((m) => m.id)).size, 4);
  assert.equal(parseMachines('ssh://a@h:1')[0]!.id, ms[0]!.id);
});

test('one host on several lines with other URI options: several machines, each with its own id (slots, failure memory)', () => {
  const ms = parseMachines('ssh://b@h:2?engine=nix x86_64-linux - 2\nssh://b@h:2 x86_64-linux - 4\nssh://b@h:2?engine=drover-cli aarch64-linux\n', '/etc/m');
  assert.deepEqual(ms.map((m) => m.uri), ['ssh://b@h:2', 'ssh://b@h:2', 'ssh://b@h:2']);
  assert.deepEqual(ms.map((m) => m.canonicalUri), ['ssh://b@h:2?engine=nix', 'ssh://b@h:2', 'ssh://b@h:2?engine=drover-cli']);
  assert.equal(new Set(ms.map((m) => m.id)).size, 3);
  assert.deepEqual(ms.map((m) => m.maxJobs), [2, 4, 1]);
  // A line without options keeps the id the hook has always given it (state survives an upgrade).
  assert.equal(ms[1]!.id, 'b@h-2-' + createHash('sha256').update('b@h:2').digest('hex').slice(0, 8));
});

test('lines for one account with other remote programs do not share its one agent: each builds through a serve of its own', () => {
  const ms = parseMachines('ssh://b@h x86_64-linux\nssh://b@h?remote-program=/opt/d/bin x86_64-linux\nssh://c@h x86_64-linux\nssh://b@h?engine=nix x86_64-linux\n', '/etc/m');
  assert.deepEqual(ms.map((m) => m.agent), [false, false, true, true]);
  assert.deepEqual(parseMachines('ssh://b@h x86_64-linux\nssh://b@h?engine=nix x86_64-linux\n').map((m) => m.agent), [true, true]);
});

const BAD: [string, RegExp][] = [
  ['ssh://h x86_64-linux - many', /line 2, field 4 \(MAX_JOBS\): 'many' is not a whole number/],
  ['ssh://h x86_64-linux - -3', /field 4 \(MAX_JOBS\)/],
  ['ssh://h x86_64-linux - 99999', /field 4 \(MAX_JOBS\): '99999'/],
  ['ssh://h x86_64-linux - 1 0', /field 5 \(SPEED_FACTOR\): '0' is not a positive number/],
  ['ssh://h x86_64-linux - 1 fast', /field 5 \(SPEED_FACTOR\)/],
  ['ssh://h x86_64-linux - 1 1e400', /field 5 \(SPEED_FACTOR\)/],
  ['ssh://h x86_64-linux relative/key', /field 3 \(SSH_KEY\): SSH key 'relative\/key' is not an absolute path/],
  ['ssh://h x86_64-linux - 1 1 kvm;rm -', /field 6 \(SUPPORTED_FEATURES\): feature 'kvm;rm'/],
  ['ssh://a x86_64-linux ; ssh://b x86_64-linux', /field 3 \(SSH_KEY\): SSH key ';' is not an absolute path; a machines file has one machine a line \(';' separates machines only in nix\.conf's builders setting\)$/],
  ['ssh://a x86_64-linux;ssh://b', /field 2 \(SYSTEMS\): system 'x86_64-linux;ssh:\/\/b' has characters .*; a machines file has one machine a line/],
  ['ssh://h x86_64-linux - 1 1 - a$b', /field 7 \(MANDATORY_FEATURES\): feature 'a\$b'/],
  ['ssh://h x86_64-linux - 1 1 - - not-base64!', /field 8 \(HOST_KEY_BASE64\): 'not-base64!' is not base64/],
  [`ssh://h x86_64-linux - 1 1 - - ${Buffer.from('hello world').toString('base64')}`, /field 8 \(HOST_KEY_BASE64\).*does not decode to a public key line/],
  [`ssh://h x86_64-linux - 1 1 - - ${Buffer.from('ssh-ed25519 AAAAC3NzaC1yc2E=').toString('base64')}`, /field 8 \(HOST_KEY_BASE64\).*damaged/],
  ['ssh://h x86_64-linux - 1 1 - - - extra', /9 fields, at most 8.*extra: 'extra'/],
  ['- x86_64-linux', /field 1 \(URI\): the URI cannot be '-'/],
  ['http://h', /field 1 \(URI\): URI scheme 'http:\/\/' is not supported/],
  ['ssh://h:99999', /field 1 \(URI\): port '99999'/],
  ['ssh://h:', /field 1 \(URI\): port ''/],
  ['h:22', /field 1 \(URI\): a port needs the ssh:\/\/ form/],
  ['ssh://-oProxyCommand=evil', /field 1 \(URI\): host name '-oProxyCommand=evil'/],
  ['ssh://-o@h', /field 1 \(URI\): user name '-o'/],
  ['ssh://h?remote-program=relative', /field 1 \(URI\): remote-program 'relative' is not an absolute directory/],
  ["ssh://h?remote-program=/a'b", /field 1 \(URI\): remote-program '\/a'b' contains a quote/],
  ['ssh://h?engine=guix', /field 1 \(URI\): engine 'guix' is not 'drover', 'drover-cli' or 'nix'/],
  ['ssh://h?agent=yes', /field 1 \(URI\): agent 'yes' is not 0 or 1/],
  ['ssh://h?colour=blue', /field 1 \(URI\): unknown option 'colour'/],
  ['ssh://h?engine=nix&engine=drover', /option 'engine' is given twice/],
  ['ssh://h?connect-timeout=soon', /connect-timeout 'soon'/],
  // Longer than a Node timer holds once connect and stall are added up: it would fire at once.
  ['ssh://h?stall-timeout=3000000', /field 1 \(URI\): stall-timeout '3000000' is more than 1000000 seconds/],
  ['ssh://h?connect-timeout=1000001', /field 1 \(URI\): connect-timeout '1000001' is more than 1000000 seconds/],
  ['ssh://h?ssh-key=/a x86_64-linux /b', /field 3 \(SSH_KEY\): SSH key '\/b' differs from the URI's ssh-key option '\/a'/],
  ['ssh://[::1', /'\[' without '\]'/],
  ['ssh://h x86_64-linux\nssh://h i686-linux', /line 3, field 1 \(URI\): 'ssh:\/\/h' is already the URI of line 2; list all of a machine's systems and features on one line/],
  ['ssh://h?engine=nix&agent=0 x86_64-linux\nssh-ng://h?agent=0&engine=nix', /line 3, field 1 \(URI\): 'ssh:\/\/h\?agent=0&engine=nix' is already the URI of line 2/],
  ['h x86_64-linux\nssh://h', /line 3, field 1 \(URI\): 'ssh:\/\/h' is already the URI of line 2/],
  ['ssh://h x86/64', /field 2 \(SYSTEMS\): system 'x86\/64'/],
  ['a/b', /field 1 \(URI\): 'a\/b' is neither/],
];

for (const [line, re] of BAD) {
  test(`bad machines line is refused with line and field: ${JSON.stringify(line)}`, () => {
    assert.throws(
      () => parseMachines(`# first line is a comment\n${line}`, '/etc/m'),
      (e: unknown) => {
        assert.ok(e instanceof MachinesFileError, String(e));
        assert.equal(e.exitCode, 2);
        assert.match(e.message, /^machines file '\/etc\/m', line [23][,:]/);
        assert.match(e.message, re);
        return true;
      },
    );
  });
}

test('the line number counts comments and blanks', () => {
  assert.throws(() => parseMachines('#a\n\n#b\nssh://h - - x'), /line 4, field 4/);
});

test('machines file location: flag > DROVER_MACHINES > XDG_CONFIG_HOME', () => {
  assert.deepEqual(machinesFilePath('/a', { DROVER_MACHINES: '/b' }), { file: '/a', explicit: true });
  assert.deepEqual(machinesFilePath(undefined, { DROVER_MACHINES: '/b' }), { file: '/b', explicit: true });
  assert.throws(() => machinesFilePath('', { DROVER_MACHINES: '/b' }), /--machines was given an empty file name/);
  assert.deepEqual(machinesFilePath(undefined, { XDG_CONFIG_HOME: '/c' }), { file: '/c/drover/machines', explicit: false });
});

test('a missing default file means no machines; a missing named file is an error', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-machines-'));
  try {
    assert.deepEqual(loadMachines(undefined, { XDG_CONFIG_HOME: d }), { file: path.join(d, 'drover', 'machines'), machines: [], missing: true });
    assert.throws(() => loadMachines(path.join(d, 'nope')), (e: unknown) => e instanceof MachinesFileError && /cannot read the machines file/.test(e.message));
    fs.writeFileSync(path.join(d, 'm'), 'ssh://x x86_64-linux - 3\n');
    assert.equal(loadMachines(undefined, { DROVER_MACHINES: path.join(d, 'm') }).machines[0]!.maxJobs, 3);
    assert.equal(loadMachines(undefined, { DROVER_MACHINES: path.join(d, 'm') }).missing, false);
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test('timeouts the hook arms as timers are refused above 1000000 s (Node would fire a longer one at once)', () => {
  for (const name of ['DROVER_HOOK_SSH_CONNECT_TIMEOUT', 'DROVER_HOOK_SSH_STALL_TIMEOUT', 'DROVER_HOOK_SSH_AGENT_IDLE']) {
    assert.throws(() => hookSettings({ [name]: '3000000' }), new RegExp(`^UsageError: environment variable ${name}='3000000' is more than 1000000 seconds$`));
    assert.doesNotThrow(() => hookSettings({ [name]: '1000000' }));
  }
  assert.equal(parseMachines('ssh://h?stall-timeout=1000000&connect-timeout=1000000')[0]!.stallTimeout, 1000000);
  // ssh keeps these itself: no limit of ours.
  assert.equal(hookSettings({ DROVER_HOOK_SSH_PERSIST: '3000000' }).controlPersist, 3000000);
});
