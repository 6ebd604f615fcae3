import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatHookRequest,
  parseHookRequest,
  parseHookLine,
  isHookReply,
  formatPathsLine,
  parsePathsLine,
  hookArgs,
  parseHookArgs,
  formatHookReply,
  HookProtocolError,
} from './hook-protocol.js';

test('request lines: AM_WILLING SYSTEM DRV FEATURES, a trailing space without features', () => {
  assert.equal(formatHookRequest({ amWilling: true, system: 'x86_64-linux', drvPath: '/s/a.drv', features: [] }), '1 x86_64-linux /s/a.drv \n');
  const line = formatHookRequest({ amWilling: false, system: 'aarch64-linux', drvPath: '/s/b.drv', features: ['kvm', 'big-parallel'] });
  assert.equal(line, '0 aarch64-linux /s/b.drv kvm,big-parallel\n');
  assert.deepEqual(parseHookRequest(line.trimEnd()), { amWilling: false, system: 'aarch64-linux', drvPath: '/s/b.drv', features: ['kvm', 'big-parallel'] });
  assert.deepEqual(parseHookRequest('1 x86_64-linux /s/a.drv ').features, []);
});

test('bad requests and fields are refused with the line named', () => {
  for (const bad of ['', '2 x /s/a.drv ', '1 x', '1 x /s/a.drv a b', 'yes x /s/a.drv ']) {
    assert.throws(() => parseHookRequest(bad), (e: Error) => e instanceof HookProtocolError && e.message.includes(`'${bad}'`));
  }
  assert.throws(() => formatHookRequest({ amWilling: true, system: 'x 86', drvPath: '/s/a.drv', features: [] }), HookProtocolError);
  assert.throws(() => formatHookRequest({ amWilling: true, system: 'x', drvPath: '/s/a.drv', features: ['a,b'] }), HookProtocolError);
});

test('reply lines: the first "# WORD" is the reply, anything else a message', () => {
  assert.deepEqual(parseHookLine('# accept'), { reply: 'accept' });
  assert.deepEqual(parseHookLine('# maybe later'), { reply: 'maybe later' });
  assert.deepEqual(parseHookLine('#accept'), { message: '#accept' });
  assert.deepEqual(parseHookLine('@ build-remote /s/a.drv host'), { message: '@ build-remote /s/a.drv host' });
  assert.equal(isHookReply('postpone'), true);
  assert.equal(isHookReply('maybe'), false);
  assert.equal(formatHookReply('decline'), '# decline\n');
});

test('paths lines and hook arguments', () => {
  assert.equal(formatPathsLine(['/s/a', '/s/b']), '/s/a /s/b \n');
  assert.deepEqual(parsePathsLine('/s/a /s/b '), ['/s/a', '/s/b']);
  assert.deepEqual(parsePathsLine(''), []);
  assert.throws(() => formatPathsLine(['/s/a b']), HookProtocolError);
  assert.deepEqual(hookArgs('x86_64-linux', 30, true), ['x86_64-linux', '30', '1']);
  assert.deepEqual(parseHookArgs(['x86_64-linux', '0', '0']), { thisSystem: 'x86_64-linux', maxSilentTime: 0, printBuildTrace: false });
  assert.throws(() => parseHookArgs(['x86_64-linux', '-1', '0']), /MAX_SILENT_TIME/);
  assert.throws(() => parseHookArgs(['x86_64-linux', '0', 'yes']), /PRINT_BUILD_TRACE/);
  assert.throws(() => parseHookArgs(['x86_64-linux']), /got 1 arguments/);
});
