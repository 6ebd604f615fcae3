// `drover-hook-ssh status` and `check`: the farm as people want to see it.
import type { Machine } from './machines.js';
import { systemsOf } from './machine-choice.js';
import { Slots } from './slots.js';
import { MachineHealth, type HealthRecord } from './machine-health.js';
import { forMachine, type HookSettings } from './settings.js';
import { probe, RemoteError } from './remote-ops.js';
import { engineFor, type ProbeInfo } from './remote-engine.js';
import { runSsh, sshKeyProblem } from './ssh.js';
import { closeSession, helloStoreDirProblem, openSession, type AgentUnusable } from './session-client.js';
import { printableLine } from './printable.js';

export interface MachineStatus {
  machine: Machine;
  busy: { slot: number; pid?: number; drv?: string; since?: number }[];
  health?: HealthRecord;
  /** Why its SSH key cannot be used: the hook skips it without a failure record (see check). */
  keyProblem?: string;
}

/** The machines file as status and check read it: where, and whether it is there at all. */
export interface MachinesSource {
  file: string;
  /** The default file does not exist: no machines, every request is declined. */
  missing: boolean;
}

/** What a machine with MAX_JOBS 0 is (its line stays in the file, it takes no builds). */
const OUT_OF_SERVICE = 'out of service (max jobs 0)';

export function farmStatus(machines: readonly Machine[], stateDir: string, settings: HookSettings): MachineStatus[] {
  const slots = new Slots(stateDir);
  const health = new MachineHealth(stateDir, { base: settings.backoffBase, max: settings.backoffMax });
  return machines.map((m) => ({
    machine: m,
    busy: slots.busy(m).map((i) => ({ slot: i, ...slots.holder(m, i) })),
    health: health.get(m),
    keyProblem: sshKeyProblem(m),
  }));
}

/** The first line of status and check. */
export function machinesHeader(src: MachinesSource, count: number): string {
  if (src.missing) return `machines file: ${src.file} does not exist (no machines: the hook declines every build, which then runs locally)`;
  return `machines file: ${src.file} (${count} machine${count === 1 ? '' : 's'})`;
}

/**
 * How each machine is shown: its URI, with the options when another line has the same host
 * (two lines of one host, e.g. `?engine=nix` and the default engine, are two machines).
 */
export function machineLabels(machines: readonly Machine[]): Map<Machine, string> {
  const count = new Map<string, number>();
  for (const m of machines) count.set(m.uri, (count.get(m.uri) ?? 0) + 1);
  return new Map(machines.map((m) => [m, count.get(m.uri)! > 1 ? m.canonicalUri : m.uri]));
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

function ago(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

export function formatStatus(src: MachinesSource, st: readonly MachineStatus[], thisSystem: string, now = Date.now()): string[] {
  const lines = [machinesHeader(src, st.length)];
  if (st.length === 0) return lines;
  const label = machineLabels(st.map((s) => s.machine));
  const rows = [['machine', 'systems', 'slots', 'speed', 'features', 'state']];
  for (const s of st) {
    const m = s.machine;
    const feats = [...m.supportedFeatures, ...m.mandatoryFeatures.map((f) => `${f}(mandatory)`)].join(',') || '-';
    const h = s.health;
    const state =
      m.maxJobs === 0
        ? OUT_OF_SERVICE
        : s.keyProblem
          ? 'SSH key unusable (see check)'
          : !h
            ? 'ok'
            : now < h.retryAt
              ? `backing off, retry in ${Math.round((h.retryAt - now) / 1000)}s`
              : `failed ${h.failures}x, retry allowed`;
    rows.push([label.get(m)!, systemsOf(m, thisSystem).join(','), m.maxJobs === 0 ? '-' : `${s.busy.length}/${m.maxJobs}`, String(m.speedFactor), feats, state]);
  }
  lines.push('', ...table(rows));
  const busy = st.flatMap((s) => s.busy.map((b) => ({ m: s.machine, ...b })));
  lines.push('', busy.length ? 'slots in use:' : 'slots in use: none');
  for (const b of busy) {
    lines.push(`  ${label.get(b.m)} slot ${b.slot}: ${b.pid ? `pid ${b.pid}` : 'pid ?'}${b.drv ? ` building ${b.drv}` : ''}${b.since ? ` for ${ago(b.since, now)}` : ''}`);
  }
  const failed = st.filter((s) => s.health);
  lines.push('', failed.length ? 'recent failures:' : 'recent failures: none');
  for (const s of failed) {
    const h = s.health!;
    lines.push(`  ${label.get(s.machine)}: ${h.failures} in a row, last ${ago(h.lastFailure, now)} ago: ${printableLine(h.lastError)}`);
  }
  return lines;
}

export interface CheckResult {
  machine: Machine;
  ok: boolean;
  /** `ok`, `FAILED`, or why the machine was not checked. */
  state: string;
  lines: string[];
}

/**
 * Connects to one machine and reports each step: login (with its time), store dir, the
 * remote tools and their version, a session (engine=drover: the remote's hello, through the
 * agent as a build would), free disk. A machine with MAX_JOBS 0 is out of service and not
 * contacted. A success clears the machine's failure memory.
 */
export async function checkMachine(m: Machine, ctx: { stateDir: string; storeDir: string; settings: HookSettings }): Promise<CheckResult> {
  if (m.maxJobs === 0) return { machine: m, ok: true, state: OUT_OF_SERVICE, lines: [] };
  const settings = forMachine(ctx.settings, m);
  const lines: string[] = [];
  const failed = (): CheckResult => ({ machine: m, ok: false, state: 'FAILED', lines });
  const health = new MachineHealth(ctx.stateDir, { base: settings.backoffBase, max: settings.backoffMax });
  const keyProblem = sshKeyProblem(m);
  if (keyProblem) {
    lines.push(`  login      FAILED: ${keyProblem}`);
    return failed();
  }
  const t0 = Date.now();
  const login = await runSsh(ctx.stateDir, m, settings, 'true', { timeoutMs: (settings.connectTimeout + settings.stallTimeout) * 1000 });
  if (login.timedOut || login.code !== 0) {
    const why = login.timedOut ? `no answer within ${settings.connectTimeout + settings.stallTimeout}s` : login.sshError || login.stderr.trim() || `ssh exited with status ${login.code}`;
    lines.push(`  login      FAILED: ${printableLine(why)}`);
    return failed();
  }
  lines.push(`  login      ok (${((Date.now() - t0) / 1000).toFixed(2)}s${m.hostKey ? ', host key pinned' : ''})`);
  const notes: string[] = [];
  const rctx = { ...ctx, settings, message: (l: string) => notes.push(l) };
  let info: ProbeInfo;
  try {
    info = (await probe(rctx, m)).info;
  } catch (e) {
    if (!(e instanceof RemoteError)) throw e;
    lines.push(`  probe      FAILED: ${printableLine(e.message)}`);
    return failed();
  }
  lines.push(`  store dir  ok: ${info.storeDir}`);
  // engine=drover: a machine that logs in and has the tools may still not hold a session
  // (something printing on its stdout, another drover version): a build there would fail.
  let session: { ok: true; version: string; how: string } | { ok: false; error: string; version?: string } | undefined;
  // An agent that cannot be used costs every build a serve process: shown, though builds work.
  let agentUnusable: AgentUnusable | undefined;
  if (engineFor(m).serveCommand) {
    try {
      const open = await openSession(rctx, m, { onAgentUnusable: (u) => (agentUnusable = u) });
      const how = /\(drover agent\)$/.test(open.t.what) ? 'through the drover agent' : 'drover-hook-ssh serve';
      // A build checks the hello's store dir before anything else: so does check.
      const wrongStoreDir = helloStoreDirProblem(m, open.hello, ctx.storeDir);
      session = wrongStoreDir ? { ok: false, error: `${wrongStoreDir} (${how})`, version: open.hello.version } : { ok: true, version: open.hello.version, how };
      await closeSession(rctx, open);
    } catch (e) {
      if (!(e instanceof RemoteError)) throw e;
      session = { ok: false, error: e.message };
    }
  }
  const tools = `${info.tool}${info.builder ? `, ${info.builder}` : ''}`;
  if (m.engine === 'nix') {
    lines.push(`  nix        ${printableLine(`${tools}${info.version ? ` (${info.version})` : ''}`)}`);
  } else {
    // drover says its own version in a session's hello; without one, node's is all we know.
    const version = session?.version ? session.version : info.node ? `node ${info.node}` : '';
    lines.push(`  drover     ${printableLine(`${tools}${version ? ` (${version})` : ''}`)}`);
  }
  for (const n of notes) lines.push(`  note       ${printableLine(n)}`);
  if (agentUnusable) lines.push(`  agent      UNUSABLE: ${printableLine(agentUnusable.why)} (socket '${agentUnusable.socket}'); sessions use drover-hook-ssh serve`);
  if (session) lines.push(session.ok ? `  session    ok (${session.how})` : `  session    FAILED: ${printableLine(session.error)}`);
  lines.push(`  free disk  ${info.freeKb === undefined ? 'unknown' : `${(info.freeKb / 1048576).toFixed(1)} GiB`}`);
  if (session && !session.ok) return failed();
  health.recordSuccess(m);
  return { machine: m, ok: true, state: 'ok', lines };
}

/** check's report: the file, then each machine's state and steps. */
export function formatCheck(src: MachinesSource, results: readonly CheckResult[]): string[] {
  const label = machineLabels(results.map((r) => r.machine));
  return [machinesHeader(src, results.length), ...results.flatMap((r) => [`${label.get(r.machine)}: ${r.state}`, ...r.lines])];
}
