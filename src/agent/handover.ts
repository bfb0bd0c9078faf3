// When a job may be handed to the next agent process (a restart root queued,
// stop-cause.ts), from the journal alone. Pure.
//
// INVARIANTS
// - A job is journaled RESTARTING only while none of its steps runs or is
//   starting: the next agent resumes at the first step not in the journal, so
//   a step that had started (a parallel member still running) would start a
//   second time there.
// - A job whose steps already failed it (not ignored), or whose step asked for
//   a reboot, is never handed over: it ends here as it would without the stop.
import type { NormalizedJob } from '../jobs/types.js';
import { planSteps } from '../jobs/job-plan.js';
import type { JournalEntry } from '../state/journal.js';
import type { PlannedRun } from './stop-cause.js';

/** The running steps of `entry` as the agent planned them (argv from the document, the user it chose). */
export function plannedRuns(job: NormalizedJob, entry: JournalEntry): PlannedRun[] {
  const plan = planSteps(job);
  const runs: PlannedRun[] = [];
  for (const running of entry.running) {
    // journal indexes are 0-based, plan indexes 1-based
    for (const node of plan) {
      const members = node.kind === 'single' ? [node.step] : node.members;
      const planned = members.find((m) => m.index === running.index + 1);
      if (planned === undefined) continue;
      const { action, user } = planned.spec;
      const argv = action.type === 'runCommand' ? action.argv : [action.handlerPath, ...action.args];
      runs.push({ index: running.index, argv, user, inGroup: node.kind === 'group' });
    }
  }
  return runs;
}

/** Whether the job may be journaled RESTARTING now: null when it may, else why not. */
export function handOverBlocker(entry: JournalEntry, starting: number): { wait: string } | { never: string } | null {
  const failed = entry.steps.find((s) => s.result.failed && !s.result.ignored);
  if (failed) return { never: `step ${failed.index + 1} failed` };
  const reboot = entry.steps.find((s) => s.result.rebootRequested === true);
  if (reboot) return { never: `step ${reboot.index + 1} asked for a reboot` };
  if (entry.running.length > 0) return { wait: `${entry.running.length} step(s) still running` };
  if (starting > 0) return { wait: 'a step is starting' };
  return null;
}
