import { describe, expect, it } from 'vitest';
import { planSteps } from '../../../src/jobs/job-plan.js';
import { commandStep, makeJob } from './engine-helpers.js';

describe('planSteps', () => {
  it('numbers steps in start order and labels groups and the final step', () => {
    const a = commandStep('A', ['true']);
    const job = makeJob([a, { kind: 'parallel', name: 'G', members: [commandStep('B', ['true']), commandStep('C', ['true'])] }], {
      finalStep: commandStep('Z', ['true']),
    });
    const plan = planSteps(job);
    const flat = plan.flatMap((node) => (node.kind === 'single' ? [node.step] : node.members));
    expect(flat.map((s) => [s.index, s.label, s.spec.name])).toEqual([
      [1, 'step 1', 'A'],
      [2, 'step 2.1', 'B'],
      [3, 'step 2.2', 'C'],
      [4, 'final step', 'Z'],
    ]);
    expect(plan.map((node) => node.kind)).toEqual(['single', 'group', 'single']);
  });
});
