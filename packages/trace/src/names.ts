// Human names for store paths: the part after the hash, which is also the key of --history.

/** `/nix/store/7rxj…-alpha-1.0.drv` → `alpha-1.0`; anything not shaped like a store path keeps its base name. */
export function drvName(path: string): string {
  const slash = path.lastIndexOf('/');
  let base = slash >= 0 ? path.slice(slash + 1) : path;
  if (base.endsWith('.drv')) base = base.slice(0, -4);
  const dash = base.indexOf('-');
  // Nix and Guix hashes are 32 base32 characters; only strip what looks like one.
  if (dash === 32 && /^[0-9a-z]{32}$/.test(base.slice(0, 32))) base = base.slice(33);
  return base || path;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  if (seconds < 60) return `${Math.round(seconds)}s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(1)} ${units[i]}`;
}

/**
 * Text from a trace as the human outputs print it: escape sequences removed (Nix colours its
 * messages), other control characters but line breaks and tabs shown as '?', so a field of
 * some trace line cannot move the cursor, clear the screen or rewrite a line.
 */
export function printable(s: string): string {
  return stripAnsi(s).replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, '?');
}

/** Removes terminal escape sequences, which Nix puts into its error messages. */
export function stripAnsi(s: string): string {
  return s.indexOf('\x1b') < 0 ? s : s.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]/g, '');
}
