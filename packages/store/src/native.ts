// Loading drover-store's native part (native/*.c, built by node-gyp during `npm ci`).
import { createRequire } from 'node:module';

/** What build/Release/drover_native.node exports; see fd-gather.ts, file-batch.ts and store.ts. */
export interface Native {
  gather(fd: number, tokens: Buffer, plan: Float64Array, paths: Buffer): Promise<void>;
  writeFiles(paths: Buffer, plan: Float64Array, chunks: Buffer[], canonical: boolean): Promise<void>;
  /** syncfs(2) of the file system holding the path, on a libuv thread. */
  syncFs(path: string): Promise<void>;
  /** Existence (op 0) or canonicalisation of single files (op 1) of zero-ended paths; results 0, 1 (not one regular file) or -errno. */
  pathMeta(op: 0 | 1, paths: Buffer, results: Int32Array): Promise<void>;
  /**
   * NAR hashes of single files up to 1 MiB (zero-ended paths, each starting at its `starts`
   * entry): status per path (0 hashed, 1 left to the caller, -errno, or SHRANK) and whether it
   * was canonicalised, NAR sizes, sha256 digests. Several jobs over one batch share it out
   * through `next` (one counter, from 0).
   */
  hashFiles(
    paths: Buffer,
    starts: Uint32Array,
    next: Int32Array,
    status: Int32Array,
    sizes: Float64Array,
    hashes: Buffer,
    canonicalise: boolean,
    gate: Int32Array | null,
  ): Promise<void>;
  /** A SHA-256 hashed on libuv's pool in the order of its updates; see hash-stream.ts. */
  hashStreamNew(): NativeHashStream;
  /** Queues the bytes, kept alive until hashed. */
  hashStreamUpdate(stream: NativeHashStream, data: Buffer): void;
  /** Bytes queued and not hashed yet, over all streams. */
  hashStreamBacklog(): number;
  /** The digest of everything queued, once it is hashed; once per stream. */
  hashStreamDigest(stream: NativeHashStream): Promise<Buffer>;
  /** Settles once at most `limit` bytes, over all streams, are queued and not hashed. */
  hashStreamDrain(limit: number): Promise<void>;
}

/** An opaque handle of the native stream hash. */
export type NativeHashStream = { readonly __nativeHashStream: unique symbol };

/** hashFiles' status for a file that ended before its size. */
export const SHRANK = -100000;

/** A failed native job: which plan item and which system call, with Node's error code. */
export interface NativeError extends Error {
  code: string;
  syscall: string;
  item: number;
}

let native: Native | undefined;

export function loadNative(): Native {
  // Without it drover-store cannot dump or restore, so say how to fix it.
  try {
    native ??= createRequire(import.meta.url)('../build/Release/drover_native.node') as Native;
  } catch (e) {
    throw new Error(`drover-store's native part is missing or broken (${(e as Error).message.split('\n')[0]}); run 'npm ci' (or 'npm rebuild @drover/store')`);
  }
  return native;
}
