// What the delivery loop does with a 413 (Payload Too Large): every report is
// made within REPORT_BUDGET_BYTES, but a server or proxy in front of it may
// take less. A 413 is never answered with the same body: the cutter halves the
// size it sends, and remembers that ceiling for every later report (the next
// one would be refused just the same). A report already at the smallest size
// that was still refused can never be delivered: it is given up.
//
// INVARIANTS
// - After onTooLarge(body) returns a ceiling, bodyFor() of any report is at
//   most that ceiling, which is half of what was refused (never below
//   MIN_REPORT_BUDGET): each 413 halves the body until the minimum, and a 413
//   at the minimum gives the report up, so a report is tried a bounded number
//   of times (about log2(REPORT_BUDGET_BYTES / MIN_REPORT_BUDGET) + 2).
// - The outbox keeps the whole report: a cut exists only on the wire.
import type { StatusReport } from '../contract/types.js';
import { fitReport, MIN_REPORT_BUDGET, serializedBytes } from '../contract/fit-report.js';

/** What to do after a 413. */
export type TooLargeVerdict = { kind: 'cut'; refusedBytes: number; ceiling: number } | { kind: 'give-up'; refusedBytes: number };

/** The delivery loop's memory of the server's real body limit. */
export interface ReportCutter {
  /** The body to send for `report`: the report itself, or cut to the learned ceiling. */
  bodyFor(report: StatusReport): StatusReport;
  /** After a 413 for `sent`: the smaller ceiling to send it with, or give up. */
  onTooLarge(sent: StatusReport): TooLargeVerdict;
  /** The learned ceiling in bytes; null while no 413 was seen. */
  ceiling(): number | null;
}

/** Creates a cutter that has seen no 413 yet. */
export function createReportCutter(): ReportCutter {
  let ceiling: number | null = null;
  return {
    bodyFor: (report) => (ceiling === null ? report : fitReport(report, ceiling).report),
    onTooLarge: (sent) => {
      const refusedBytes = serializedBytes(sent);
      if (refusedBytes <= MIN_REPORT_BUDGET) return { kind: 'give-up', refusedBytes };
      const next = Math.max(MIN_REPORT_BUDGET, Math.floor(refusedBytes / 2));
      ceiling = ceiling === null ? next : Math.min(ceiling, next);
      return { kind: 'cut', refusedBytes, ceiling };
    },
    ceiling: () => ceiling,
  };
}
