// A registration batch in path order, and where a path stands in it, without a Map of strings.
//
// Why: rows go into ValidPaths in path order (the path index's B-tree then only appends), and
// a new row's id is known from its place in that order. For 100k paths a string sort cost
// 70–180 ms and a Map from path to place another 100 ms; store paths of one store differ
// from their first hash character on, and Nix's base32 digits sort as their characters do,
// so a number made of the first six is a sort key and a search key.

/** Nix's base32 digits in ascending character order. */
const DIGIT = new Int8Array(128).fill(-1);
for (const [i, c] of [...'0123456789abcdfghijklmnpqrsvwxyz'].entries()) DIGIT[c.charCodeAt(0)] = i;
const KEY_CHARS = 6;
/** Bits for the original index beside a 30-bit key: batches this large fall back to strings. */
const INDEX_BITS = 20;

export class PathOrder<T extends { path: string }> {
  private constructor(
    /** The items in byte order of their paths (store paths are ASCII: string order is byte order). */
    readonly items: T[],
    /** Each item's key (in `items` order), when every path has the common shape. */
    private readonly keys: Float64Array | undefined,
    private readonly dir: string,
    private readonly map: Map<string, number> | undefined,
    /** For each place in `items`, the item's index in the list it was made from. */
    private readonly from: Int32Array,
  ) {}
  /** The inverse of `from`, made when first asked for. */
  private places: Int32Array | undefined;

  static of<T extends { path: string }>(unsorted: readonly T[]): PathOrder<T> {
    const n = unsorted.length;
    const dir = n > 0 ? unsorted[0]!.path.slice(0, unsorted[0]!.path.lastIndexOf('/') + 1) : '';
    const keys = new Float64Array(n);
    let shaped = dir !== '' && n < 2 ** INDEX_BITS;
    let sorted = true;
    for (let i = 0; i < n && shaped; i++) {
      const k = keyOf(unsorted[i]!.path, dir);
      if (k < 0) shaped = false;
      keys[i] = k;
      if (i > 0 && sorted) sorted = unsorted[i - 1]!.path < unsorted[i]!.path;
    }
    const from = new Int32Array(n);
    const byPathAt = (a: number, b: number) => byPath(unsorted[a]!, unsorted[b]!);
    if (!shaped) {
      const order = Array.from({ length: n }, (_, i) => i).sort(byPathAt);
      from.set(order);
      const items = order.map((i) => unsorted[i]!);
      return new PathOrder(items, undefined, dir, new Map(items.map((x, i) => [x.path, i])), from);
    }
    if (sorted) {
      for (let i = 0; i < n; i++) from[i] = i;
      return new PathOrder(unsorted.slice(), keys, dir, undefined, from);
    }
    // Sort key and original index packed in one double: a native numeric sort.
    const packed = new Float64Array(n);
    for (let i = 0; i < n; i++) packed[i] = keys[i]! * 2 ** INDEX_BITS + i;
    packed.sort();
    for (let i = 0; i < n; i++) {
      from[i] = packed[i]! % 2 ** INDEX_BITS;
      keys[i] = Math.floor(packed[i]! / 2 ** INDEX_BITS);
    }
    // Runs that share the key's characters are put in whole-path order.
    for (let i = 0; i < n; ) {
      let j = i + 1;
      while (j < n && keys[j] === keys[i]) j++;
      if (j - i > 1) from.set(Array.from(from.subarray(i, j)).sort(byPathAt), i);
      i = j;
    }
    const items: T[] = new Array(n);
    for (let i = 0; i < n; i++) items[i] = unsorted[from[i]!]!;
    return new PathOrder(items, keys, dir, undefined, from);
  }

  /**
   * The same order over `others`, a list in step with the one this order was made from (the
   * same paths at the same indices): its sort is not done again.
   */
  over<U extends { path: string }>(others: readonly U[]): PathOrder<U> {
    if (others.length !== this.from.length) throw new Error(`PathOrder.over: ${others.length} items for an order of ${this.from.length}`);
    const items: U[] = new Array(others.length);
    for (let i = 0; i < items.length; i++) {
      items[i] = others[this.from[i]!]!;
      if (items[i]!.path !== this.items[i]!.path) throw new Error(`PathOrder.over: '${items[i]!.path}' is not at the place of '${this.items[i]!.path}'`);
    }
    return new PathOrder(items, this.keys, this.dir, this.map, this.from);
  }

  /** The place in `items` of the item at `index` in the list this order was made from. */
  placeOf(index: number): number {
    if (!this.places) {
      this.places = new Int32Array(this.from.length);
      for (let i = 0; i < this.from.length; i++) this.places[this.from[i]!] = i;
    }
    return this.places[index]!;
  }

  /** The index, in the list this order was made from, of the item at `place` in `items`. */
  indexAt(place: number): number {
    return this.from[place]!;
  }

  /** The place of `p` in `items`, or undefined if it is not there. */
  position(p: string): number | undefined {
    if (this.map) return this.map.get(p);
    const keys = this.keys!;
    const k = keyOf(p, this.dir);
    if (k < 0) return undefined;
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid]! < k) lo = mid + 1;
      else hi = mid;
    }
    for (; lo < keys.length && keys[lo] === k; lo++) if (this.items[lo]!.path === p) return lo;
    return undefined;
  }
}

/** The number made of the first hash characters of `p`, or -1 if `p` is not `dir` + a hash. */
function keyOf(p: string, dir: string): number {
  const at = dir.length;
  if (p.length < at + KEY_CHARS || !p.startsWith(dir)) return -1;
  let v = 0;
  for (let k = 0; k < KEY_CHARS; k++) {
    const d = DIGIT[p.charCodeAt(at + k)] ?? -1;
    if (d < 0) return -1;
    v = v * 32 + d;
  }
  return v;
}

function byPath(a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}
