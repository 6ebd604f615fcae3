// The second reader of nar-dump.ts: claims file-content jobs in NAR order and reads them into
// its shared ring. Loads only nar-dump-shared.ts, so the thread starts as fast as Node allows.
import { workerData, type MessagePort } from 'node:worker_threads';
import { CTL, SLOT, readJob, type DumpShared, type JobError } from './nar-dump-shared.js';

const { ctl, state, slots, nums, paths, ring, port } = workerData as DumpShared & { port: MessagePort };
const pathBytes = Buffer.from(paths.buffer, paths.byteOffset, paths.byteLength);
const ringBytes = Buffer.from(ring.buffer, ring.byteOffset, ring.byteLength);
const jobs = state.length;
const cap = ringBytes.length;
/** Bytes ever put into the ring; modulo 2^32 it is comparable with ctl[TAIL]. */
let head = 0;

for (;;) {
  if (Atomics.load(ctl, CTL.STOP)) break;
  const published = Atomics.load(ctl, CTL.PUBLISHED);
  const c = Atomics.load(ctl, CTL.NEXT);
  if (c >= published) {
    Atomics.wait(ctl, CTL.PUBLISHED, published, 1000);
    continue;
  }
  const slot = c % jobs;
  const len = nums[slot * 2 + 1]!;
  const tail = Atomics.load(ctl, CTL.TAIL);
  if (cap - (((head | 0) - tail) >>> 0) < len) {
    Atomics.wait(ctl, CTL.TAIL, tail, 1000);
    continue;
  }
  // The main thread may have taken it meanwhile; then the slot's fields were not ours to use.
  if (Atomics.compareExchange(ctl, CTL.NEXT, c, c + 1) !== c) continue;
  const at = head % cap;
  const file = pathBytes.subarray(slots[slot * SLOT.SIZE + SLOT.PATH_AT]!, slots[slot * SLOT.SIZE + SLOT.PATH_AT]! + slots[slot * SLOT.SIZE + SLOT.PATH_LEN]!);
  try {
    readJob(file, nums[slot * 2]!, len, ringBytes, at);
  } catch (e) {
    const err = e as Error & { code?: string };
    port.postMessage({ name: err.name, message: err.message, code: err.code } satisfies JobError);
    Atomics.store(state, slot, -(c + 1));
    Atomics.notify(state, slot);
    break;
  }
  head += len;
  slots[slot * SLOT.SIZE + SLOT.RING_AT] = at;
  Atomics.store(state, slot, c + 1);
  Atomics.notify(state, slot);
}
