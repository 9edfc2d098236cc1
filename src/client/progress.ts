/**
 * Live progress of a migration on a terminal: one bar per pass (a new pass
 * starts its own bar, so no bar ever runs backwards) with the pass's
 * percent, throughput, remaining, dirty rate and expected downtime, drawn
 * by cli-progress. When stdout is not a terminal, plain lines instead: one
 * per finished pass.
 */
import cliProgress from 'cli-progress';
import type { MigrateInfo } from '../control/query-migrate.js';
import type { PassRecord } from '../migration/stats.js';
import { passLine } from './report.js';
import { formatBytes } from './size.js';

export class MigrationProgress {
  private bar: cliProgress.SingleBar | null = null;
  private barPass = 0;
  private shown = 0;
  private readonly tty: boolean;

  constructor(private readonly out: NodeJS.WriteStream = process.stdout, private readonly quiet = false) {
    this.tty = out.isTTY === true && !quiet;
  }

  update(info: MigrateInfo, passes: readonly PassRecord[]): void {
    if (this.quiet) return;
    for (; this.shown < passes.length; this.shown++) {
      if (this.tty) this.closeBar();
      this.out.write(`${passLine(passes[this.shown])}\n`);
    }
    const p = info['x-ferry-progress'];
    if (!this.tty || p === undefined || (info.status !== 'active' && info.status !== 'device')) return;
    if (p.pass <= passes.length) return; // that pass is over and printed; the next has not begun

    const payload = {
      pass: p.pass,
      rate: `${formatBytes(((info.ram?.mbps ?? 0) * 1e6) / 8)}/s`,
      remaining: formatBytes(info.ram?.remaining ?? 0),
      dirty: `${formatBytes((info.ram?.['dirty-pages-rate'] ?? 0) * 4096)}/s`,
      expected: info['expected-downtime'] === undefined ? '-' : `${info['expected-downtime']} ms`,
    };
    if (this.bar === null || this.barPass !== p.pass) {
      this.closeBar();
      this.bar = new cliProgress.SingleBar({
        format: 'pass {pass} |{bar}| {percentage}% | {rate} | remaining {remaining} | dirtying {dirty} | expected downtime {expected}',
        stream: this.out,
        hideCursor: true,
      }, cliProgress.Presets.shades_classic);
      this.bar.start(100, 0, payload);
      this.barPass = p.pass;
    }
    this.bar.update(Math.round(p['pass-fraction'] * 100), payload);
  }

  finish(): void {
    this.closeBar();
  }

  private closeBar(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
