// Real Nix 2.8 pointed at a temporary store that drover shares: the oracle for the formats.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

/** Environment that makes nix-* use `storeDir`/`stateDir` with no sandbox, daemon or build users. */
export function nixEnv(root: string, storeDir: string, stateDir: string): NodeJS.ProcessEnv {
  const conf = path.join(root, 'nix-etc');
  fs.mkdirSync(conf, { recursive: true });
  fs.writeFileSync(path.join(conf, 'nix.conf'), 'sandbox = false\nbuild-users-group =\nexperimental-features = nix-command\nsubstituters =\n');
  return {
    NIX_STORE_DIR: storeDir,
    NIX_STATE_DIR: stateDir,
    NIX_LOG_DIR: path.join(root, 'nix-log'),
    NIX_CONF_DIR: conf,
    NIX_REMOTE: '',
  };
}

/** Runs a Nix command; throws with its stderr when it fails, so a broken oracle is loud. */
export function nix(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: string | Buffer): Buffer {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, input, maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}
