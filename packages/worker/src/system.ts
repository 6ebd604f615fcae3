// Which systems and features this machine builds for itself (Nix's canBuildLocally).
import fs from 'node:fs';

const ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7l', riscv64: 'riscv64', ppc64: 'powerpc64le' };

/** Nix's system string for this machine, e.g. `x86_64-linux`. */
export function thisSystem(): string {
  return `${ARCH[process.arch] ?? process.arch}-${process.platform}`;
}

/** A 32-bit x86 derivation runs on x86_64 Linux as it does in Nix. */
export function canBuildSystem(system: string, self = thisSystem()): boolean {
  return system === self || (system === 'i686-linux' && self === 'x86_64-linux');
}

/** Nix's default system-features: what any machine offers, plus kvm when there is one. */
export function defaultSystemFeatures(): string[] {
  const f = ['benchmark', 'big-parallel', 'nixos-test'];
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    f.push('kvm');
  } catch {
    /* no kvm */
  }
  return f;
}

/** requiredSystemFeatures of a derivation: whitespace-separated in its env. */
export function requiredFeatures(env: Record<string, string>): string[] {
  const v = env['requiredSystemFeatures'];
  return v ? v.split(/\s+/).filter((x) => x !== '') : [];
}

export function missingFeatures(required: readonly string[], offered: readonly string[]): string[] {
  return required.filter((f) => !offered.includes(f));
}
