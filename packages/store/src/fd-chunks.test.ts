// Tests of fdChunks: every byte of files and pipes, big chunks from small writes, data before the end, non-blocking pipes, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fdChunks } from './fd-chunks.js';

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-fd-chunks-'));
  return fn(dir).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

test('a file: every byte, in chunks no larger than a slab, each a view that is never written again', async () => {
  await withDir(async (dir) => {
    const data = pattern(3 * 1048576 + 12345, 1);
    const f = path.join(dir, 'data');
    fs.writeFileSync(f, data);
    const fd = fs.openSync(f, 'r');
    try {
      const got: Buffer[] = [];
      for await (const c of fdChunks(fd, { slab: 1 << 20 })) got.push(c);
      assert.ok(got.every((c) => c.length > 0 && c.length <= 1 << 20));
      // Kept to the end: a slab reused under an earlier chunk would show here.
      assert.ok(Buffer.concat(got).equals(data));
    } finally {
      fs.closeSync(fd);
    }
  });
});

test('a pipe written in small pieces faster than it is read: the pieces come gathered into big chunks', async () => {
  await withDir(async (dir) => {
    const fifo = path.join(dir, 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const writer = spawn(process.execPath, ['-e', "const fs = require('fs'); const fd = fs.openSync(process.argv[1], 'w'); for (let i = 0; i < 800; i++) fs.writeSync(fd, Buffer.alloc(4096, i % 251)); fs.closeSync(fd);", fifo], { stdio: 'ignore' });
    const fd = fs.openSync(fifo, 'r');
    try {
      const got: Buffer[] = [];
      for await (const c of fdChunks(fd)) {
        got.push(c);
        await sleep(30);
      }
      const all = Buffer.concat(got);
      assert.equal(all.length, 800 * 4096);
      for (let i = 0; i < 800; i++) assert.equal(all[i * 4096], i % 251);
      assert.ok(got.length < 40, `800 writes came as ${got.length} chunks`);
    } finally {
      fs.closeSync(fd);
      writer.kill();
    }
  });
});

test('a slow non-blocking pipe: data comes before the end, and nothing is lost to EAGAIN', async () => {
  await withDir(async (dir) => {
    const fifo = path.join(dir, 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const rfd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const wfd = fs.openSync(fifo, 'w');
    // Each part fits in the pipe: this process writes with blocking writes on the thread that reads.
    const parts = [pattern(1000, 2), pattern(30_000, 3), pattern(10, 4)];
    let firstSeenBeforeEnd = false;
    let ended = false;
    const writing = (async () => {
      for (const p of parts) {
        fs.writeSync(wfd, p);
        await sleep(60);
      }
      ended = true;
      fs.closeSync(wfd);
    })();
    const got: Buffer[] = [];
    try {
      for await (const c of fdChunks(rfd)) {
        if (got.length === 0) firstSeenBeforeEnd = !ended;
        got.push(c);
      }
    } finally {
      fs.closeSync(rfd);
    }
    await writing;
    assert.ok(firstSeenBeforeEnd, 'the first bytes came while the writer was still writing');
    assert.ok(Buffer.concat(got).equals(Buffer.concat(parts)));
  });
});

test('a descriptor that cannot be read: the error, not an end of file', async () => {
  await withDir(async (dir) => {
    const fd = fs.openSync(dir, 'r');
    try {
      await assert.rejects(
        (async () => {
          for await (const _ of fdChunks(fd)) void _;
        })(),
        /EISDIR/,
      );
    } finally {
      fs.closeSync(fd);
    }
  });
});
