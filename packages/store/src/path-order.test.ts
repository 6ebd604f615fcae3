// Tests for path-order.ts: the numeric sort orders like a string sort, and finds every path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PathOrder } from './path-order.js';

const digits = '0123456789abcdfghijklmnpqrsvwxyz';
let seed = 7;
const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
const hashPart = (prefix: string) => prefix + Array.from({ length: 32 - prefix.length }, () => digits[rnd(32)]).join('');
const item = (path: string) => ({ path });

const paths = [
  ...Array.from({ length: 3000 }, (_, i) => `/s/store/${hashPart('')}-p${i}`),
  // Shared first characters (the key), and one hash part with several names.
  ...Array.from({ length: 50 }, (_, i) => `/s/store/${hashPart('zzzzzz')}-t${i}`),
  '/s/store/000000aaaaaaaaaaaaaaaaaaaaaaaaaa-b',
  '/s/store/000000aaaaaaaaaaaaaaaaaaaaaaaaaa-a',
  '/s/store/000000aaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv',
];

test('paths come out in byte order, and each is found at its place; others are not found', () => {
  const want = [...paths].sort();
  for (const input of [paths, want]) {
    const order = PathOrder.of(input.map(item));
    assert.deepEqual(
      order.items.map((i) => i.path),
      want,
    );
    want.forEach((p, i) => assert.equal(order.position(p), i, p));
    for (const absent of ['/s/store/000000aaaaaaaaaaaaaaaaaaaaaaaaaa-c', '/s/store/zzzzzz', '/other/store/000000aaaaaaaaaaaaaaaaaaaaaaaaaa-a', 'x']) {
      assert.equal(order.position(absent), undefined, absent);
    }
  }
});

test('paths not all of one shape are sorted and found as strings', () => {
  const odd = ['/s/store/abc', '/t/store/zzzzzzzz-x', '/s/store/AAAAAAAA-upper', ...paths.slice(0, 20)];
  const order = PathOrder.of(odd.map(item));
  const want = [...odd].sort();
  assert.deepEqual(
    order.items.map((i) => i.path),
    want,
  );
  want.forEach((p, i) => assert.equal(order.position(p), i, p));
  assert.equal(order.position('/s/store/none'), undefined);
  assert.deepEqual(PathOrder.of([]).items, []);
});

test('an order carried over to a list in step with its own puts that list in the same order, and refuses one that is not', () => {
  for (const list of [paths, [...paths].sort(), ['/a/x', '/b/y', '/a/w']]) {
    const order = PathOrder.of(list.map(item));
    const others = list.map((p, i) => ({ path: p, i }));
    const moved = order.over(others);
    assert.deepEqual(moved.items.map((x) => x.path), order.items.map((x) => x.path));
    moved.items.forEach((x, k) => assert.equal(moved.position(x.path), k));
    for (const x of moved.items) assert.equal(others[x.i], x, 'items are the new list\'s own objects');
    assert.throws(() => order.over(others.slice(1)), /items for an order of/);
    assert.throws(() => order.over([...others].reverse()), /is not at the place of/);
  }
});
