// What happens to a build's outputs before they become valid: canonical metadata, one
// streaming pass for NAR hash and references, fixed-output hash checks.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import {
  Hash,
  fixedOutputCa,
  hashFile,
  hashPath,
  narChunks,
  parseHash,
  type DerivationOutput,
  type HashAlgo,
  type ValidPathInfo,
} from '@drover/store';
import { ReferenceScanner } from './references.js';
import { BuildStepError } from './failure.js';

/**
 * Nix's canonicalisePathMetaData: read-only (0444, or 0555 for executables and
 * directories), mtime 1 (the epoch + 1 s); setuid/setgid/sticky bits are dropped.
 */
export function canonicaliseTree(p: string): void {
  const st = fs.lstatSync(p);
  if (st.isSymbolicLink()) {
    if (st.mtimeMs !== 1000) fs.lutimesSync(p, 1, 1);
    return;
  }
  if (st.isDirectory()) {
    // A directory must be writable while its entries are changed.
    if ((st.mode & 0o200) === 0) fs.chmodSync(p, 0o755);
    for (const name of fs.readdirSync(p)) canonicaliseTree(path.join(p, name));
  } else if (!st.isFile()) {
    throw new BuildStepError('output', `'${p}' is neither a regular file, a directory nor a symlink, so it cannot be in the store`);
  }
  const want = st.isDirectory() || st.mode & 0o100 ? 0o555 : 0o444;
  if (st.isDirectory() || (st.mode & 0o7777) !== want) fs.chmodSync(p, want);
  if (st.mtimeMs !== 1000) fs.utimesSync(p, 1, 1);
}

export interface InspectedOutput {
  narHash: Hash;
  narSize: number;
  references: string[];
}

/** NAR hash, size and references of `p` (among `candidates`) in one pass over its NAR. */
export function inspectOutput(p: string, candidates: Iterable<string>): InspectedOutput {
  const h = createHash('sha256');
  const scanner = new ReferenceScanner(candidates);
  let size = 0;
  for (const c of narChunks(p)) {
    h.update(c);
    scanner.update(c);
    size += c.length;
  }
  return { narHash: new Hash('sha256', h.digest()), narSize: size, references: scanner.found() };
}

/**
 * Checks a fixed output against the hash its derivation names and returns its `ca`.
 * A mismatch names both hashes in SRI, as people paste them.
 */
export function checkFixedOutput(drvPath: string, outName: string, out: DerivationOutput, narHash: Hash): string {
  const recursive = out.hashAlgo!.startsWith('r:');
  const algo = (recursive ? out.hashAlgo!.slice(2) : out.hashAlgo!) as HashAlgo;
  const wanted = parseHash(out.hash!, algo);
  let got: Hash;
  if (recursive) {
    got = algo === 'sha256' ? narHash : hashPath(out.path, algo).hash;
  } else {
    const st = fs.lstatSync(out.path);
    if (!st.isFile() || st.mode & 0o100) {
      throw new BuildStepError('hash-mismatch', `output '${outName}' of fixed-output derivation '${drvPath}' must be a non-executable regular file (flat hash)`);
    }
    got = hashFile(out.path, algo);
  }
  if (!got.bytes.equals(wanted.bytes)) {
    throw new BuildStepError(
      'hash-mismatch',
      `hash mismatch in fixed-output derivation '${drvPath}': output '${out.path}' wanted ${wanted.toString('sri')}, got ${got.toString('sri')}`,
    );
  }
  return fixedOutputCa(recursive, got);
}

/**
 * Everything about one finished output except the DB write: canonicalised, hashed, scanned
 * for references among `candidates` (the input closure and the derivation's own outputs),
 * checked if fixed. Throws BuildStepError when the output is missing or wrong.
 */
export function finishOutput(
  drvPath: string,
  outName: string,
  out: DerivationOutput,
  candidates: Iterable<string>,
): ValidPathInfo {
  try {
    fs.lstatSync(out.path);
  } catch {
    throw new BuildStepError('output', `builder for '${drvPath}' failed to produce output path '${out.path}' (output '${outName}')`);
  }
  canonicaliseTree(out.path);
  const { narHash, narSize, references } = inspectOutput(out.path, candidates);
  let ca: string | undefined;
  if (out.hashAlgo) {
    ca = checkFixedOutput(drvPath, outName, out, narHash);
    const others = references.filter((r) => r !== out.path);
    if (others.length > 0) {
      throw new BuildStepError('hash-mismatch', `fixed-output derivation '${drvPath}' may not refer to other store paths, but '${out.path}' refers to ${others.join(', ')}`);
    }
  }
  return { path: out.path, narHash, narSize, references, deriver: drvPath, ca };
}
