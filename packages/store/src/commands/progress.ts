// Progress lines on stderr for long streams, only when stderr is a terminal.

/** Returns a reporter that redraws one status line at most ten times a second, and `done` to clear it. */
export function progressLine(enabled = process.stderr.isTTY === true): { update(text: string): void; done(): void } {
  let last = 0;
  let shown = false;
  return {
    update(text: string) {
      if (!enabled) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      shown = true;
      process.stderr.write(`\r\x1b[K${text}`);
    },
    done() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

export function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
