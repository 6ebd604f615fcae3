// `drover-hook-ssh status` and `check`: the farm as people want to see it.
import type { Machine } from './machines.js';
import { systemsOf } from './machine-choice.js';
import { Slots } from './slots.js';
import { MachineHealth, type HealthRecord } from './machine-health.js';
import { forMachine, type HookSettings } from './settings.js';
import { probe, RemoteError } from './remote-ops.js';
import { runSsh } from './ssh.js';

export interface MachineStatus {
  machine: Machine;
  busy: { slot: number; pid?: number; drv?: string; since?: number }[];
  health?: HealthRecord;
}

export function farmStatus(machines: readonly Machine[], stateDir: string, settings: HookSettings): MachineStatus[] {
  const slots = new Slots(stateDir);
  const health = new MachineHealth(stateDir, { base: settings.backoffBase, max: settings.backoffMax });
  return machines.map((m) => ({
    machine: m,
    busy: slots.busy(m).map((i) => ({ slot: i, ...slots.holder(m, i) })),
    health: health.get(m),
  }));
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

function ago(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

export function formatStatus(file: string, st: readonly MachineStatus[], thisSystem: string, now = Date.now()): string[] {
  const lines = [`machines file: ${file} (${st.length} machine${st.length === 1 ? '' : 's'})`];
  if (st.length === 0) return lines;
  const rows = [['machine', 'systems', 'slots', 'speed', 'features', 'state']];
  for (const s of st) {
    const m = s.machine;
    const feats = [...m.supportedFeatures, ...m.mandatoryFeatures.map((f) => `${f}(mandatory)`)].join(',') || '-';
    const h = s.health;
    const state = !h ? 'ok' : now < h.retryAt ? `backing off, retry in ${Math.round((h.retryAt - now) / 1000)}s` : `failed ${h.failures}x, retry allowed`;
    rows.push([m.uri, systemsOf(m, thisSystem).join(','), `${s.busy.length}/${m.maxJobs}`, String(m.speedFactor), feats, state]);
  }
  lines.push('', ...table(rows));
  const busy = st.flatMap((s) => s.busy.map((b) => ({ m: s.machine, ...b })));
  lines.push('', busy.length ? 'slots in use:' : 'slots in use: none');
  for (const b of busy) {
    lines.push(`  ${b.m.uri} slot ${b.slot}: ${b.pid ? `pid ${b.pid}` : 'pid ?'}${b.drv ? ` building ${b.drv}` : ''}${b.since ? ` for ${ago(b.since, now)}` : ''}`);
  }
  const failed = st.filter((s) => s.health);
  lines.push('', failed.length ? 'recent failures:' : 'recent failures: none');
  for (const s of failed) {
    const h = s.health!;
    lines.push(`  ${s.machine.uri}: ${h.failures} in a row, last ${ago(h.lastFailure, now)} ago: ${h.lastError}`);
  }
  return lines;
}

export interface CheckResult {
  machine: Machine;
  ok: boolean;
  lines: string[];
}

/**
 * Connects to one machine and reports each step: login (with its time), store dir, the
 * remote tools and their version, free disk. A success clears the machine's failure memory.
 */
export async function checkMachine(m: Machine, ctx: { stateDir: string; storeDir: string; settings: HookSettings }): Promise<CheckResult> {
  const settings = forMachine(ctx.settings, m);
  const lines: string[] = [];
  const health = new MachineHealth(ctx.stateDir, { base: settings.backoffBase, max: settings.backoffMax });
  const t0 = Date.now();
  const login = await runSsh(ctx.stateDir, m, settings, 'true', { timeoutMs: (settings.connectTimeout + settings.stallTimeout) * 1000 });
  if (login.timedOut || login.code !== 0) {
    const why = login.timedOut ? `no answer within ${settings.connectTimeout + settings.stallTimeout}s` : login.sshError || login.stderr.trim() || `ssh exited with status ${login.code}`;
    lines.push(`  login      FAILED: ${why}`);
    return { machine: m, ok: false, lines };
  }
  lines.push(`  login      ok (${((Date.now() - t0) / 1000).toFixed(2)}s${m.hostKey ? ', host key pinned' : ''})`);
  try {
    const { info } = await probe({ ...ctx, settings, message: () => {} }, m);
    lines.push(`  store dir  ok: ${info.storeDir}`);
    lines.push(`  ${m.engine === 'nix' ? 'nix      ' : 'drover   '}  ${info.tool}${info.builder ? `, ${info.builder}` : ''}${info.version ? ` (${info.version})` : ''}`);
    lines.push(`  free disk  ${info.freeKb === undefined ? 'unknown' : `${(info.freeKb / 1048576).toFixed(1)} GiB`}`);
    health.recordSuccess(m);
    return { machine: m, ok: true, lines };
  } catch (e) {
    if (!(e instanceof RemoteError)) throw e;
    lines.push(`  probe      FAILED: ${e.message}`);
    return { machine: m, ok: false, lines };
  }
}
