// Synthetic traces for the benchmark and for tests: Nix internal-json and Guix logs of any size,
// shaped like real ones (many builds, log lines of varied length, escapes, UTF-8, progress).
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

const WORDS = ['gcc', '-O2', '-c', 'src/main.c', '-o', 'main.o', 'checking', 'for', 'stdlib.h...', 'yes', 'CC', 'libfoo_la-bar.lo',
  'make[2]:', 'Entering', 'directory', "'/build/source'", 'warning:', 'unused', 'variable', "'x'", 'PASS:', 'test-suite'];

/** A deterministic pseudo-random sequence, so every run benchmarks the same bytes. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function logLine(r: () => number): string {
  const n = 3 + Math.floor(r() * 25);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(WORDS[Math.floor(r() * WORDS.length)]!);
  return parts.join(' ');
}

const STORE = '/nix/store/';
const hash = (r: () => number): string => {
  const a = '0123456789abcdfghijklmnpqrsvwxyz';
  let h = '';
  for (let i = 0; i < 32; i++) h += a[Math.floor(r() * 32)];
  return h;
};

/** Writes about `bytes` bytes of `nix-build --log-format internal-json -v` output to `file`. */
export async function writeNixJsonLog(file: string, bytes: number, seed = 1): Promise<number> {
  const r = rng(seed);
  const out = createWriteStream(file, { highWaterMark: 1 << 20 });
  let written = 0;
  // Ids as Nix makes them: pid << 32 plus a counter; this pid pushes them past 2^53.
  let id = 3_000_000n << 32n;
  const next = (): string => String(++id);
  const builds = next();
  let chunk = `@nix {"action":"start","id":${builds},"level":0,"text":"","type":104}\n`;
  let done = 0;
  let b = 0;
  while (written + chunk.length < bytes) {
    const drv = `${STORE}${hash(r)}-pkg-${b++}.drv`;
    const act = next();
    chunk += `@nix {"action":"start","fields":["${drv}","",1,1],"id":${act},"level":3,"parent":${builds},"text":"building '${drv}'","type":105}\n`;
    const lines = 200 + Math.floor(r() * 2000);
    for (let i = 0; i < lines; i++) {
      if (i % 400 === 0) chunk += `@nix {"action":"result","fields":["${['unpackPhase', 'configurePhase', 'buildPhase', 'installPhase'][(i / 400) % 4]}"],"id":${act},"type":104}\n`;
      const x = r();
      let text = logLine(r);
      // Some lines need JSON escapes, as coloured compiler output does.
      if (x < 0.03) text = `\\u001b[1m${text}\\u001b[0m`;
      else if (x < 0.05) text = `${text} \\"quoted\\" \\tand tabs`;
      else if (x < 0.08) text = `${text} ünïcödé ✓`;
      chunk += `@nix {"action":"result","fields":["${text}"],"id":${act},"type":101}\n`;
      if (chunk.length > 1 << 20) {
        written += Buffer.byteLength(chunk);
        if (!out.write(chunk)) await once(out, 'drain');
        chunk = '';
      }
    }
    done++;
    chunk += `@nix {"action":"result","fields":[${done},${done + 10},1,0],"id":${builds},"type":105}\n`;
    chunk += `@nix {"action":"stop","id":${act}}\n`;
  }
  chunk += `@nix {"action":"stop","id":${builds}}\n`;
  written += Buffer.byteLength(chunk);
  out.end(chunk);
  await once(out, 'finish');
  return written;
}

/** Writes about `bytes` bytes of a Guix daemon trace with `@ build-log PID LEN` chunks to `file`. */
export async function writeGuixLog(file: string, bytes: number, seed = 2): Promise<number> {
  const r = rng(seed);
  const out = createWriteStream(file, { highWaterMark: 1 << 20 });
  let written = 0;
  let parts: Buffer[] = [];
  let size = 0;
  const push = (b: Buffer): void => {
    parts.push(b);
    size += b.length;
  };
  const flush = async (): Promise<void> => {
    const buf = Buffer.concat(parts, size);
    parts = [];
    size = 0;
    written += buf.length;
    if (!out.write(buf)) await once(out, 'drain');
  };
  let pid = 1000;
  while (written + size < bytes) {
    // Two builds at a time, their chunks interleaved as the daemon writes them.
    const running = [0, 1].map(() => ({ pid: ++pid, drv: `/gnu/store/${hash(r)}-pkg-${pid}.drv`, left: 100 + Math.floor(r() * 400) }));
    for (const b of running) push(Buffer.from(`@ build-started ${b.drv} - x86_64-linux /var/log/guix/drvs/${b.pid}.drv.gz ${b.pid}\n`));
    while (running.some((b) => b.left > 0)) {
      for (const b of running) {
        if (b.left <= 0) continue;
        let text = '';
        const n = 1 + Math.floor(r() * 40);
        for (let i = 0; i < n; i++) {
          const x = r();
          text += logLine(r) + (x < 0.05 ? ' ünïcödé ✓\n' : x < 0.08 ? ' \x1b[1m"bold"\x1b[0m\tC:\\path\r\n' : '\n');
        }
        if (r() < 0.1) text += '@ not a trace line: it is inside a chunk\n';
        const data = Buffer.from(text);
        // Cut anywhere, even inside a multi-byte character, as a pipe read would.
        const cut = Math.floor(r() * data.length);
        for (const piece of [data.subarray(0, cut), data.subarray(cut)]) {
          if (piece.length === 0) continue;
          push(Buffer.from(`@ build-log ${b.pid} ${piece.length}\n`));
          push(piece);
        }
        b.left -= n;
      }
      if (size > 1 << 20) await flush();
    }
    for (const b of running) push(Buffer.from(`@ build-succeeded ${b.drv} -\n`));
  }
  await flush();
  out.end();
  await once(out, 'finish');
  return written;
}
