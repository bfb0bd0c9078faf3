// What a job's steps share: looked-up run-as accounts, one working directory
// per account (created with the first step that needs it, removed at the end)
// and the agent's privileges (read once, with the first step).
import type { Clock } from '../clock/clock.js';
import { describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { readAgentPrivileges, type AgentPrivileges } from './launch.js';
import { createUnstartedResult } from './run-step.js';
import type { StepResult, StepSpec } from './types.js';
import type { UserInfo } from './users.js';
import { createJobDir, removeJobDir } from './work-dir.js';

/** What JobResources needs from the engine options. */
export interface ResourceOptions {
  workDir: string;
  agentUid: number;
  agentPrivileges?: AgentPrivileges;
  lookupUser: (name: string) => Promise<UserInfo | null>;
  clock: Pick<Clock, 'now'>;
}

/** Everything a step needs to start, or the result of a step that could not start. */
export type Prepared = { user: UserInfo; cwd: string; agent: AgentPrivileges } | { unstarted: StepResult };

/** The accounts, directories and privileges of one job. */
export class JobResources {
  private readonly users = new Map<string, Promise<UserInfo | null>>();
  private readonly dirs = new Map<string, Promise<string>>();
  private readonly jobId: string;
  private readonly options: ResourceOptions;
  private privileges: Promise<AgentPrivileges> | null = null;

  constructor(jobId: string, options: ResourceOptions) {
    this.jobId = jobId;
    this.options = options;
  }

  /** Looks up the step's user and its job directory; a failure becomes the step's (unstarted) result. */
  async prepare(spec: StepSpec): Promise<Prepared> {
    const { clock } = this.options;
    let user: UserInfo | null;
    try {
      user = await this.resolveUser(spec.user);
    } catch (error) {
      return { unstarted: createUnstartedResult(spec, `could not look up user "${spec.user}": ${describeError(error)}`, clock) };
    }
    if (user === null) return { unstarted: createUnstartedResult(spec, `user "${spec.user}" does not exist`, clock) };
    let cwd: string;
    try {
      cwd = await this.resolveDir(user);
    } catch (error) {
      return { unstarted: createUnstartedResult(spec, `could not create its working directory: ${describeError(error)}`, clock) };
    }
    const { agentPrivileges, agentUid } = this.options;
    this.privileges ??= agentPrivileges ? Promise.resolve(agentPrivileges) : readAgentPrivileges(agentUid);
    return { user, cwd, agent: await this.privileges };
  }

  /** Removes every job directory made; failures are logged, not thrown. */
  async removeDirs(log: Log): Promise<void> {
    for (const dir of this.dirs.values()) {
      try {
        await removeJobDir(await dir);
      } catch (error) {
        log.warn(`could not remove a job directory: ${describeError(error)}`, { jobId: this.jobId });
      }
    }
  }

  private resolveUser(name: string): Promise<UserInfo | null> {
    let found = this.users.get(name);
    if (found === undefined) {
      found = this.options.lookupUser(name);
      this.users.set(name, found);
    }
    return found;
  }

  private resolveDir(user: UserInfo): Promise<string> {
    let dir = this.dirs.get(user.name);
    if (dir === undefined) {
      dir = createJobDir(this.options.workDir, this.jobId, user, this.options.agentUid);
      this.dirs.set(user.name, dir);
    }
    return dir;
  }
}
