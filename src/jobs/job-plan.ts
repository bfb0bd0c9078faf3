// A job's steps in the order they start, each with its 1-based index and the
// label reports use: "step 2", "step 3.1" (a parallel member), "final step".
import type { NormalizedJob, StepSpec } from './types.js';

/** One step of the plan. */
export interface PlannedStep {
  /** 1-based over all steps (parallel members and finalStep included): the journal's step number. */
  index: number;
  label: string;
  spec: StepSpec;
}

/** A step that runs alone, or the members of a parallel group. */
export type PlanNode = { kind: 'single'; step: PlannedStep } | { kind: 'group'; members: PlannedStep[] };

/** Lays out `job` as it runs: its steps and groups in order, then its finalStep. */
export function planSteps(job: NormalizedJob): PlanNode[] {
  const nodes: PlanNode[] = [];
  let index = 0;
  const plan = (spec: StepSpec, label: string): PlannedStep => ({ index: (index += 1), label, spec });
  for (const [i, node] of job.steps.entries()) {
    if (node.kind === 'step') nodes.push({ kind: 'single', step: plan(node.step, `step ${i + 1}`) });
    else nodes.push({ kind: 'group', members: node.members.map((m, at) => plan(m, `step ${i + 1}.${at + 1}`)) });
  }
  if (job.finalStep !== null) nodes.push({ kind: 'single', step: plan(job.finalStep, 'final step') });
  return nodes;
}
