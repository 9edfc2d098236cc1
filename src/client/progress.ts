/**
 * Live progress of a migration on a terminal: one bar per pass (a new pass
 * starts its own bar, so no bar ever runs backwards) with the pass's
 * percent, its transfer rate so far, the switchover rule's cautious
 * bandwidth estimate (each labelled: they can differ several-fold, see
 * figures.ts), remaining, dirty rate and expected downtime, drawn by
 * cli-progress. When stdout is not a terminal, plain lines instead: one
 * per finished pass. Either way, a line when the migration is seen not
 * converging, and when that changes (convergence-notes.ts), with the
 * prediction of the time to converge; a line each time the policy engages
 * a remedy, each time auto-converge changes the vCPUs' throttle, and when
 * dirty-limit engages or moves a vCPU's throttle (dirty-limit-notes.ts).
 */
import cliProgress from 'cli-progress';
import type { MigrateInfo } from '../control/query-migrate.js';
import type { PassRecord } from '../migration/stats.js';
import { DirtyLimitNotes } from './dirty-limit-notes.js';
import { ConvergenceNotes } from './convergence-notes.js';
import { RULE_ESTIMATE, xbzrleText } from './figures.js';
import { passLine } from './report.js';
import { formatBytes, formatRate } from './size.js';

/** Where the bar's pass began, as this client saw it first: its transfer rate so far is measured from there. */
interface PassStart {
  readonly transferred: number;
  readonly atMs: number;
}

export class MigrationProgress {
  private bar: cliProgress.SingleBar | null = null;
  private barPass = 0;
  private barStart: PassStart = { transferred: 0, atMs: 0 };
  private shown = 0;
  private readonly tty: boolean;
  private readonly notes = new ConvergenceNotes();
  private throttle = 0;
  /** The passes printed when the XBZRLE figures were last shown (once per pass, once it encoded or missed anything). */
  private xbzrleAt = 0;
  private remedy = 'none';
  /** multifd-compression auto: the decision last shown (channels compressing, and why). */
  private compressing: string | null = null;
  private readonly limits = new DirtyLimitNotes();

  /** `now`: the clock of the pass rate, ms (a test gives its own). */
  constructor(
    private readonly out: NodeJS.WriteStream = process.stdout, private readonly quiet = false, private readonly now = () => performance.now(),
  ) {
    this.tty = out.isTTY === true && !quiet;
  }

  /** The pause reason last shown (post-copy paused), so that each pause is said once. */
  private pausedFor: string | null = null;

  /** With xbzrle: its figures, under each new pass line. */
  private xbzrleNote(info: MigrateInfo, passes: number): void {
    const x = info['xbzrle-cache'];
    if (x === undefined || passes === this.xbzrleAt || x.pages + x['cache-miss'] === 0) return;
    if (this.tty) this.closeBar();
    this.out.write(`xbzrle: ${xbzrleText(x)}\n`);
    this.xbzrleAt = passes;
  }

  update(info: MigrateInfo, passes: readonly PassRecord[]): void {
    if (this.quiet) return;
    for (; this.shown < passes.length; this.shown++) {
      if (this.tty) this.closeBar();
      this.out.write(`${passLine(passes[this.shown])}\n`);
      const pass = passes[this.shown];
      const note = this.notes.note(pass);
      if (note !== null) this.out.write(`${note}${pass.prediction == null ? '' : `; ${pass.prediction}`}\n`);
      if (pass.remedy != null && pass.remedy.name !== this.remedy) {
        this.out.write(`policy: ${pass.remedy.name} (${pass.remedy.why})\n`);
        this.remedy = pass.remedy.name;
      }
    }
    this.xbzrleNote(info, passes.length);
    const throttle = info['cpu-throttle-percentage'] ?? 0;
    if (throttle !== this.throttle && (info.status === 'active' || throttle > 0)) {
      if (this.tty) this.closeBar();
      this.out.write(`throttle: the vCPUs are throttled to ${throttle} % (the guest dirties faster than the migration sends)\n`);
      this.throttle = throttle;
    }
    this.compressionNote(info);
    const pausedFor = info['x-ferry-pause-reason'] ?? null;
    if (pausedFor !== this.pausedFor) {
      if (pausedFor !== null) {
        if (this.tty) this.closeBar();
        this.out.write(`post-copy paused: ${pausedFor}; nothing is discarded: recover with ferry recover (or migrate-recover on the destination, then migrate with resume here)\n`);
      }
      this.pausedFor = pausedFor;
    }
    const limit = this.limits.note(info['x-ferry-vcpu-dirty-limit']);
    if (limit !== null) {
      if (this.tty) this.closeBar();
      this.out.write(`${limit}\n`);
    }
    const p = info['x-ferry-progress'];
    if (!this.tty || p === undefined || (info.status !== 'active' && info.status !== 'device')) return;
    if (p.pass <= passes.length) return; // that pass is over and printed; the next has not begun

    const transferred = info.ram?.transferred ?? 0;
    const now = this.now();
    if (this.bar === null || this.barPass !== p.pass) this.barStart = { transferred, atMs: now };
    const sentBytes = transferred - this.barStart.transferred;
    const ruleBandwidth = passes.at(-1)?.bandwidthBytesPerSec; // what the rule used at its last decision
    const payload = {
      pass: p.pass,
      // '-' until the source's figures (posted every 100 ms) show bytes of this pass.
      sent: sentBytes > 0 && now > this.barStart.atMs ? formatRate((sentBytes * 1000) / (now - this.barStart.atMs)) : '-',
      rule: ruleBandwidth === undefined ? '-' : formatRate(ruleBandwidth),
      remaining: formatBytes(info.ram?.remaining ?? 0),
      dirty: formatRate((info.ram?.['dirty-pages-rate'] ?? 0) * (info.ram?.['page-size'] ?? 4096)),
      expected: info['expected-downtime'] === undefined ? '-' : `${info['expected-downtime']} ms`,
    };
    if (this.bar === null || this.barPass !== p.pass) this.openBar(p.pass, payload);
    this.bar?.update(Math.round(p['pass-fraction'] * 100), payload);
  }

  /** auto: a line each time the channels compressing change (on, off), with the rule's words. */
  private compressionNote(info: MigrateInfo): void {
    const c = info.compression;
    if (c?.['x-ferry-why'] === undefined) return;
    const now = `${c['x-ferry-compressing-channels']} of ${c['x-ferry-channels']}`;
    if (now === this.compressing) return;
    if (this.tty) this.closeBar();
    this.out.write(`compression ${c['x-ferry-method']}: ${now} channels compressing; ${c['x-ferry-why']}\n`);
    this.compressing = now;
  }

  finish(): void {
    this.closeBar();
  }

  private openBar(pass: number, payload: object): void {
    this.closeBar();
    this.bar = new cliProgress.SingleBar({
      format: `pass {pass} |{bar}| {percentage}% | sent {sent} this pass | ${RULE_ESTIMATE} {rule} | remaining {remaining} | ` +
        'dirtying {dirty} | expected downtime {expected}',
      stream: this.out,
      barsize: 20,
      hideCursor: true,
    }, cliProgress.Presets.shades_classic);
    this.bar.start(100, 0, payload);
    this.barPass = pass;
  }

  private closeBar(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
