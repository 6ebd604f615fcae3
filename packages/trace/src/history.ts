// --history FILE: an SQLite record of build durations by derivation name, for ETAs and "usually takes".
import type { Database as Db } from 'better-sqlite3';
import { TraceError, TraceUsageError } from './errors.js';
import type { BuildInfo, Estimator } from './tracker.js';

/** How many of the latest successful builds of a name its estimate averages. */
const RECENT = 5;

export interface HistoryRow {
  name: string;
  drv: string;
  duration: number;
  result: 'succeeded' | 'failed';
}

export class History implements Estimator {
  private readonly estimates = new Map<string, number>();

  private constructor(private readonly db: Db, private readonly file: string) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS builds (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        drv TEXT NOT NULL,
        duration REAL NOT NULL,
        result TEXT NOT NULL,
        finished_at REAL NOT NULL
      );
      CREATE INDEX IF NOT EXISTS builds_by_name ON builds (name, finished_at);
    `);
    const rows = db.prepare(`
      SELECT name, AVG(duration) AS duration FROM (
        SELECT name, duration, ROW_NUMBER() OVER (PARTITION BY name ORDER BY finished_at DESC, id DESC) AS n
        FROM builds WHERE result = 'succeeded'
      ) WHERE n <= ${RECENT} GROUP BY name`).all() as { name: string; duration: number }[];
    for (const r of rows) this.estimates.set(r.name, r.duration);
  }

  /** Opens (creating when missing) the history file. Loading the SQLite binding only here keeps startup fast without it. */
  static async open(file: string): Promise<History> {
    try {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(file);
      db.pragma('busy_timeout = 5000');
      return new History(db, file);
    } catch (e) {
      throw new TraceUsageError(`cannot use history file ${file}: ${(e as Error).message}`);
    }
  }

  estimate(name: string): number | null {
    return this.estimates.get(name) ?? null;
  }

  /** Durations of builds that ran to an end of their own (not cut off, not skipped). */
  static rowsOf(builds: Iterable<BuildInfo>): HistoryRow[] {
    const rows: HistoryRow[] = [];
    for (const b of builds) {
      if (b.duration === null) continue;
      if (b.state === 'succeeded') rows.push({ name: b.name, drv: b.drv, duration: b.duration, result: 'succeeded' });
      else if (b.state === 'failed' && (b.cause === 'builder' || b.cause === 'timeout' || b.cause === 'hash-mismatch')) {
        rows.push({ name: b.name, drv: b.drv, duration: b.duration, result: 'failed' });
      }
    }
    return rows;
  }

  /** Adds this run's durations; a file that cannot take them (locked, read-only, disk full) is exit 1, named. */
  record(rows: HistoryRow[], now = Date.now() / 1000): void {
    try {
      const insert = this.db.prepare('INSERT INTO builds (name, drv, duration, result, finished_at) VALUES (?, ?, ?, ?, ?)');
      this.db.transaction(() => {
        for (const r of rows) insert.run(r.name, r.drv, r.duration, r.result, now);
      })();
    } catch (e) {
      throw new TraceError(`cannot record build durations in history file ${this.file}: ${(e as Error).message}`);
    }
  }

  close(): void {
    this.db.close();
  }
}
