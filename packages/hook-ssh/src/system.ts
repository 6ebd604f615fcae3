// This machine's Nix system string (for `status` and `check`, which get no THIS_SYSTEM).
const ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7l', riscv64: 'riscv64', ppc64: 'powerpc64le' };

export function localSystem(): string {
  return `${ARCH[process.arch] ?? process.arch}-${process.platform}`;
}
