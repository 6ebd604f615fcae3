// Which machine may build a request, which one should, and how to say why none can.
import type { Machine } from './machines.js';
import type { HookRequest } from './hook-requests.js';

/** A machine's systems, with an empty field read as the local system (as Nix reads it). */
export function systemsOf(m: Machine, thisSystem: string): string[] {
  return m.systems.length > 0 ? m.systems : [thisSystem];
}

/**
 * A machine fits when it lists the system, supports every required feature (its mandatory
 * features count as supported), and every one of its mandatory features is required.
 * maxJobs 0 takes a machine out of service without deleting its line.
 */
export function fits(m: Machine, req: Pick<HookRequest, 'system' | 'requiredFeatures'>, thisSystem: string): boolean {
  if (m.maxJobs < 1) return false;
  if (!systemsOf(m, thisSystem).includes(req.system)) return false;
  for (const f of req.requiredFeatures) {
    if (!m.supportedFeatures.includes(f) && !m.mandatoryFeatures.includes(f)) return false;
  }
  for (const f of m.mandatoryFeatures) if (!req.requiredFeatures.includes(f)) return false;
  return true;
}

export interface Candidate {
  machine: Machine;
  /** Slots in use right now. */
  load: number;
}

/**
 * Orders machines with a free slot: lowest load/speed, then highest speed, then lowest
 * load, then file order (so the choice is deterministic). Full machines are left out.
 */
export function rankCandidates(cands: readonly Candidate[]): Candidate[] {
  return cands
    .filter((c) => c.load < c.machine.maxJobs)
    .map((c, i) => ({ c, i }))
    .sort((a, b) => {
      const ra = a.c.load / a.c.machine.speedFactor;
      const rb = b.c.load / b.c.machine.speedFactor;
      if (ra !== rb) return ra - rb;
      if (a.c.machine.speedFactor !== b.c.machine.speedFactor) return b.c.machine.speedFactor - a.c.machine.speedFactor;
      if (a.c.load !== b.c.load) return a.c.load - b.c.load;
      return a.i - b.i;
    })
    .map((x) => x.c);
}

/**
 * The message for "no machine has this system/features": what was asked next to what each
 * machine offers, so the missing piece is visible at a glance.
 */
export function noFitTable(machines: readonly Machine[], req: Pick<HookRequest, 'system' | 'requiredFeatures' | 'drvPath'>, thisSystem: string): string {
  const asked = `system ${req.system}, features ${req.requiredFeatures.length ? req.requiredFeatures.join(',') : '(none)'}`;
  if (machines.length === 0) return `no machine can build '${req.drvPath}' (${asked}): the machines file lists no machines`;
  const rows = [['machine', 'systems', 'max-jobs', 'supported features', 'mandatory features', 'why not']];
  for (const m of machines) {
    rows.push([
      m.uri,
      systemsOf(m, thisSystem).join(','),
      String(m.maxJobs),
      m.supportedFeatures.join(',') || '-',
      m.mandatoryFeatures.join(',') || '-',
      whyNot(m, req, thisSystem) ?? 'fits',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => '  ' + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
  return `no machine can build '${req.drvPath}' (${asked}):\n${table}`;
}

/** The first reason a machine does not fit, or undefined when it does. */
export function whyNot(m: Machine, req: Pick<HookRequest, 'system' | 'requiredFeatures'>, thisSystem: string): string | undefined {
  if (m.maxJobs < 1) return 'max-jobs is 0';
  if (!systemsOf(m, thisSystem).includes(req.system)) return `no ${req.system}`;
  const missing = req.requiredFeatures.filter((f) => !m.supportedFeatures.includes(f) && !m.mandatoryFeatures.includes(f));
  if (missing.length) return `lacks ${missing.join(',')}`;
  const unasked = m.mandatoryFeatures.filter((f) => !req.requiredFeatures.includes(f));
  if (unasked.length) return `only takes builds that require ${unasked.join(',')}`;
  return undefined;
}
