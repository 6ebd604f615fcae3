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
  ) {}

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
    if (!shaped) {
      const items = [...unsorted].sort(byPath);
      return new PathOrder(items, undefined, dir, new Map(items.map((x, i) => [x.path, i])));
    }
    if (sorted) return new PathOrder(unsorted.slice(), keys, dir, undefined);
    // Sort key and original index packed in one double: a native numeric sort.
    const packed = new Float64Array(n);
    for (let i = 0; i < n; i++) packed[i] = keys[i]! * 2 ** INDEX_BITS + i;
    packed.sort();
    const items: T[] = new Array(n);
    for (let i = 0; i < n; i++) {
      items[i] = unsorted[packed[i]! % 2 ** INDEX_BITS]!;
      keys[i] = Math.floor(packed[i]! / 2 ** INDEX_BITS);
    }
    // Runs that share the key's characters are put in whole-path order.
    for (let i = 0; i < n; ) {
      let j = i + 1;
      while (j < n && keys[j] === keys[i]) j++;
      if (j - i > 1) {
        const run = items.slice(i, j).sort(byPath);
        for (let k = i; k < j; k++) items[k] = run[k - i]!;
      }
      i = j;
    }
    return new PathOrder(items, keys, dir, undefined);
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
