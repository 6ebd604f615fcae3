// The committed derivation fixtures (tools/gen-derivation-fixtures.sh): real Nix 2.8 output, loaded for tests.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const DERIVATION_FIXTURES = fileURLToPath(new URL('../fixtures/derivations/', import.meta.url));

export interface DerivationFixtures {
  /** The store dir Nix used: part of every path below. */
  storeDir: string;
  /** Attribute of derivations.nix → its .drv path. */
  attrs: Map<string, string>;
  /** .drv path → the exact bytes Nix wrote. */
  drvs: Map<string, Buffer>;
  /** `nix show-derivation --recursive` of all of them, exactly as Nix printed it. */
  showJson: Buffer;
  /** Name → path of each input source (files beside derivations.nix). */
  sources: Map<string, string>;
}

function pairs(file: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of fs.readFileSync(path.join(DERIVATION_FIXTURES, file), 'utf8').split('\n')) {
    if (!line) continue;
    const sp = line.indexOf(' ');
    m.set(line.slice(0, sp), line.slice(sp + 1));
  }
  return m;
}

export function loadDerivationFixtures(): DerivationFixtures {
  const storeDir = fs.readFileSync(path.join(DERIVATION_FIXTURES, 'store-dir'), 'utf8').trim();
  const drvs = new Map<string, Buffer>();
  for (const f of fs.readdirSync(path.join(DERIVATION_FIXTURES, 'drv')).sort()) {
    drvs.set(`${storeDir}/${f}`, fs.readFileSync(path.join(DERIVATION_FIXTURES, 'drv', f)));
  }
  return {
    storeDir,
    attrs: pairs('attrs'),
    drvs,
    showJson: fs.readFileSync(path.join(DERIVATION_FIXTURES, 'show.json')),
    sources: pairs('sources'),
  };
}
