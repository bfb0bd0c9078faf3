import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobOffer } from '../../../src/contract/types.js';
import { JobValidationError } from '../../../src/errors/errors.js';
import { DOCUMENT_LIMITS, jobTimeoutMs, validateJob } from '../../../src/jobs/document.js';
import type { ValidateOptions } from '../../../src/jobs/document.js';
import type { NormalizedJob, StepSpec } from '../../../src/jobs/types.js';
import { lookupUser } from '../../../src/jobs/users.js';
import type { UserInfo } from '../../../src/jobs/users.js';
import { HANDLER_FIXTURES_DIR, loadJobFixture } from '../../fixtures/jobs/load-job-fixture.js';

const H = HANDLER_FIXTURES_DIR;
const USERS: Record<string, UserInfo> = {
  cloudjobs: { name: 'cloudjobs', uid: 998, gid: 998, home: '/var/lib/cloudjobs', shell: '/usr/sbin/nologin', groups: [998] },
  root: { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/bash', groups: [0] },
  pi: { name: 'pi', uid: 1000, gid: 1000, home: '/home/pi', shell: '/bin/bash', groups: [27, 1000] },
};

// The user database is the one thing faked here (the machine has no
// "cloudjobs" user); one test below goes through the real lookupUser.
function options(extra: Partial<ValidateOptions> = {}): ValidateOptions {
  return {
    runAsUser: 'cloudjobs',
    allowedUsers: [],
    handlerDirs: [H],
    defaultTimeoutMs: 3_600_000,
    lookupUser: async (name) => USERS[name] ?? null,
    ...extra,
  };
}
const WITH_ROOT = options({ allowedUsers: ['cloudjobs', 'root'] });

function offer(document: unknown, extra: Partial<JobOffer> = {}): JobOffer {
  return { jobId: 'job-1', jobName: 'Test Job', timeoutSeconds: 300, createdAt: null, document, ...extra };
}

function step(name: string, argvOrHandler: string[] | { handler: string; args: string[] }, extra: Partial<StepSpec> = {}): StepSpec {
  const action: StepSpec['action'] = Array.isArray(argvOrHandler)
    ? { type: 'runCommand', argv: argvOrHandler, shell: false }
    : { type: 'runHandler', handlerPath: path.join(H, argvOrHandler.handler), args: argvOrHandler.args };
  return { name, action, user: 'cloudjobs', allowStdErr: 0, ignoreStepFailure: false, timeoutMs: null, ...extra };
}

function job(steps: StepSpec[], extra: Partial<NormalizedJob> = {}): NormalizedJob {
  return {
    jobId: 'job-1',
    jobName: 'Test Job',
    timeoutMs: 300_000,
    includeStdOut: false,
    steps: steps.map((s) => ({ kind: 'step', step: s })),
    finalStep: null,
    ...extra,
  };
}

async function problemsOf(document: unknown, opts: ValidateOptions = options(), extra: Partial<JobOffer> = {}): Promise<string[]> {
  try {
    await validateJob(offer(document, extra), opts);
  } catch (error) {
    expect(error).toBeInstanceOf(JobValidationError);
    const invalid = error as JobValidationError;
    expect(invalid.code).toBe('JOB_INVALID');
    expect(invalid.message).toBe(invalid.problems.join('; '));
    return [...invalid.problems];
  }
  throw new Error('validateJob accepted the document');
}

function flat(fields: Record<string, unknown>): unknown {
  return { version: '1.0', steps: [{ name: 'S', type: 'runCommand', input: { command: 'true' }, ...fields }] };
}

describe('validateJob: AWS IoT Device Client sample documents', () => {
  it('echo', async () => {
    expect(await validateJob(offer(loadJobFixture('aws-echo.json')), options())).toEqual(
      job([step('Echo Messages', { handler: 'echo', args: ['Hello IoT World!'] })]),
    );
  });

  it('download-file.sh (a symlink inside the handler dir resolves to its target)', async () => {
    const document = loadJobFixture('aws-download-file.template.json', {
      SOURCE_URL: 'file:///etc/hostname',
      DESTINATION: '/tmp/Downloaded_File',
    });
    expect(await validateJob(offer(document), WITH_ROOT)).toEqual(
      job([step('Download File', { handler: 'download-file', args: ['file:///etc/hostname', '/tmp/Downloaded_File'] }, { user: 'root' })]),
    );
  });

  it.each([
    ['aws-install-packages.json', 'Install Packages', 'install-packages.sh', ['lftp', 'dos2unix']],
    ['aws-remove-packages.json', 'Remove Packages', 'remove-packages.sh', ['lftp', 'dos2unix']],
    ['aws-reboot.json', 'Reboot Device', 'reboot.sh', []],
  ])('%s', async (file, name, handler, args) => {
    expect(await validateJob(offer(loadJobFixture(file)), WITH_ROOT)).toEqual(
      job([step(name, { handler, args }, { user: 'root' })]),
    );
  });

  it('run-shellcommand (comma form)', async () => {
    expect(await validateJob(offer(loadJobFixture('aws-run-shellcommand.json')), WITH_ROOT)).toEqual(
      job([step('Create New Directory', ['mkdir', 'newDir'], { user: 'root' })]),
    );
  });

  it('the managed Run-Command shape: string booleans, empty runAsUser, escaped comma', async () => {
    expect(await validateJob(offer(loadJobFixture('aws-managed-run-command.json')), options())).toEqual(
      job([step('Run-Command', ['printf', '%s|%s\\n', 'a,b', 'c'])], { includeStdOut: true }),
    );
  });

  it('the AWS samples that ask for root are REJECTED while root is not allowed', async () => {
    expect(await problemsOf(loadJobFixture('aws-reboot.json'))).toEqual([
      'step 1 ("Reboot Device"): runAsUser "root" is not in jobs.allowed_users (cloudjobs)',
    ]);
  });
});

describe("validateJob: AWS IoT Device Client's own test vectors (test/jobs/TestJobDocument.cpp)", () => {
  it('CommandContainsSpaceCharacters: blanks around comma tokens are trimmed', async () => {
    const document = {
      version: '1.0',
      steps: [{ action: { name: 'displayDirectory', type: 'runCommand', input: { command: ' \n echo \t, Hello World ' } } }],
    };
    expect(await validateJob(offer(document), options())).toEqual(job([step('displayDirectory', ['echo', 'Hello World'])]));
  });

  it('SpaceCharactersContainedWithinFirstWordOfCommand: refused', async () => {
    const document = {
      version: '1.0',
      steps: [{ action: { name: 'displayDirectory', type: 'runCommand', input: { command: ' aws iot \t,describe-endpoint' } } }],
    };
    expect(await problemsOf(document)).toEqual([
      'step 1 ("displayDirectory"): input.command is in comma form (it has an unescaped comma) but its first element ' +
        '"aws iot" contains whitespace; separate every word with a comma, or write the comma as \\, to split on blanks instead',
    ]);
  });

  it('oldJobDocumentCompatibility: operation/args/path run as one runHandler step named after the operation', async () => {
    expect(await validateJob(offer(loadJobFixture('aws-old-schema.json')), options())).toEqual(
      job([step('download-file.sh', { handler: 'download-file', args: ['file:///etc/hostname', '/tmp/Downloaded_File.tar.gz'] })]),
    );
  });

  it('old schema: allowStdErr and includeStdOut are read, steps and runAsUser beside operation are not', async () => {
    const document = {
      operation: 'echo',
      args: ['hi'],
      allowStdErr: 2,
      includeStdOut: 'true',
      runAsUser: 'root',
      steps: 'ignored, as DC ignores it',
    };
    expect(await validateJob(offer(document), options())).toEqual(
      job([step('echo', { handler: 'echo', args: ['hi'] }, { allowStdErr: 2 })], { includeStdOut: true }),
    );
  });

  it('old schema: bad args are reported like input.args of the step it becomes', async () => {
    expect(await problemsOf({ operation: 'echo', args: 'hi' })).toEqual([
      'step 1 ("echo"): input.args must be an array of strings, got string "hi"',
    ]);
  });

  it('MissingRequiredFields: no version and no operation is refused', async () => {
    expect(await problemsOf({ includeStdOut: 'true', steps: [{ action: { name: 'x', type: 'runCommand', input: { command: 'ls' } } }] })).toEqual([
      'version is missing; it must be "1.0"',
    ]);
  });
});

describe('validateJob: Iotistic templates and the seed guide', () => {
  it('health-check', async () => {
    const document = loadJobFixture('iotistic-health-check.template.json', { SERVICE_NAME: 'ssh' });
    expect(await validateJob(offer(document), options())).toEqual(
      job(
        [
          step('Check Disk Space', ['df', '-h']),
          step('Check Memory', ['free', '-h']),
          step('Check Services', ['systemctl', 'status', 'ssh']),
        ],
        { includeStdOut: true },
      ),
    );
  });

  it('restart-service', async () => {
    const document = loadJobFixture('iotistic-restart-service.template.json', { SERVICE_NAME: 'redis' });
    expect(await validateJob(offer(document), WITH_ROOT)).toEqual(
      job([step('Restart Service', ['systemctl', 'restart', 'redis'], { user: 'root' })], { includeStdOut: true }),
    );
  });

  it('update-config', async () => {
    const document = loadJobFixture('iotistic-update-config.template.json', {
      SERVICE_NAME: 'myapp',
      CONFIG_PATH: '/etc/myapp/app.conf',
      CONFIG_URL: 'file:///srv/app.conf',
    });
    expect(await validateJob(offer(document), WITH_ROOT)).toEqual(
      job(
        [
          step('Backup Config', ['cp', '/etc/myapp/app.conf', '/etc/myapp/app.conf.backup']),
          step('Download New Config', { handler: 'download-file', args: ['file:///srv/app.conf', '/etc/myapp/app.conf'] }),
        ],
        { includeStdOut: true, finalStep: step('Restart Service', ['systemctl', 'restart', 'myapp'], { user: 'root' }) },
      ),
    );
  });

  it('the test/cloud/CONTRACT.md example (AWS shape, conditions, finalStep handler)', async () => {
    expect(await validateJob(offer(loadJobFixture('contract-example.json')), WITH_ROOT)).toEqual(
      job([step('Restart', ['systemctl', 'restart', 'redis'], { user: 'root', allowStdErr: 2 })], {
        includeStdOut: true,
        finalStep: step('Cleanup', { handler: 'cleanup.sh', args: ['a', 'b'] }),
      }),
    );
  });

  it('the seed guide: "docker restart redis" is three words; an unnamed step is "step 1"', async () => {
    expect(await validateJob(offer(loadJobFixture('seed-docker-restart.json')), options())).toEqual(
      job([step('step 1', ['docker', 'restart', 'redis'])], { includeStdOut: true }),
    );
  });

  it('accepts the document as a JSON string too', async () => {
    const text = JSON.stringify(loadJobFixture('seed-docker-restart.json'));
    expect(await validateJob(offer(text), options())).toEqual(
      job([step('step 1', ['docker', 'restart', 'redis'])], { includeStdOut: true }),
    );
  });

  it('extensions: parallel groups, input.shell, input.timeoutSeconds', async () => {
    expect(await validateJob(offer(loadJobFixture('extensions.json')), options())).toEqual({
      ...job([], { includeStdOut: true }),
      steps: [
        {
          kind: 'parallel',
          name: 'Both At Once',
          members: [step('First', ['sh', '-c', 'echo first']), step('Second', ['echo', 'second'], { timeoutMs: 5000 })],
        },
        {
          kind: 'step',
          step: {
            ...step('Through A Shell', []),
            action: { type: 'runCommand', argv: ['/bin/sh', '-c', 'echo "$CLOUDJOBS_STEP" | tr a-z A-Z'], shell: true },
            ignoreStepFailure: true,
            allowStdErr: 3,
          },
        },
      ],
    });
  });

  it('an unnamed parallel group and its unnamed members get positional names', async () => {
    const document = { version: '1.0', steps: [{ parallel: [{ type: 'runCommand', input: { command: ['true'] } }] }] };
    expect(await validateJob(offer(document), options())).toEqual({
      ...job([]),
      steps: [{ kind: 'parallel', name: 'step 1', members: [step('step 1.1', ['true'])] }],
    });
  });
});

describe('validateJob: run-as users', () => {
  it('a step asking for root is REJECTED unless root is in allowed_users', async () => {
    expect(await problemsOf(loadJobFixture('malformed/root-step.json'))).toEqual([
      'step 1 ("Who"): runAsUser "root" is not in jobs.allowed_users (cloudjobs)',
    ]);
    expect(await validateJob(offer(loadJobFixture('malformed/root-step.json')), WITH_ROOT)).toEqual(
      job([step('Who', ['id', '-u'], { user: 'root' })]),
    );
  });

  it('allowed_users replaces the default list, and run_as_user stays allowed', async () => {
    const opts = options({ allowedUsers: ['pi'] });
    const document = {
      version: '1.0',
      steps: [
        { name: 'A', type: 'runCommand', input: { command: 'true' }, runAsUser: 'pi' },
        { name: 'B', type: 'runCommand', input: { command: 'true' } },
        { name: 'C', type: 'runCommand', input: { command: 'true' }, runAsUser: 'cloudjobs' },
      ],
    };
    expect(await validateJob(offer(document), opts)).toEqual(
      job([step('A', ['true'], { user: 'pi' }), step('B', ['true']), step('C', ['true'])]),
    );
    expect(await problemsOf(flat({ runAsUser: 'root' }), opts)).toEqual([
      'step 1 ("S"): runAsUser "root" is not in jobs.allowed_users (cloudjobs, pi)',
    ]);
  });

  it('an allowed user that does not exist is a problem, never a fallback to another user', async () => {
    expect(await problemsOf(flat({ runAsUser: 'ghost' }), options({ allowedUsers: ['ghost'] }))).toEqual([
      'step 1 ("S"): runAsUser "ghost" does not exist on this device',
    ]);
  });

  it('a missing run_as_user is reported once for the job, not per step', async () => {
    const document = {
      version: '1.0',
      steps: [
        { name: 'A', type: 'runCommand', input: { command: 'true' } },
        { name: 'B', type: 'runCommand', input: { command: 'true' } },
      ],
    };
    expect(await problemsOf(document, options({ runAsUser: 'nosuch' }))).toEqual([
      'jobs.run_as_user "nosuch" does not exist on this device; create it (the package does) or set run_as_user',
    ]);
  });

  it('a failing user lookup rejects the step naming the error', async () => {
    const opts = options({
      lookupUser: async () => {
        throw new Error('getent passwd x failed: NSS down');
      },
    });
    expect(await problemsOf(flat({}), opts)).toEqual([
      'jobs.run_as_user "cloudjobs" could not be looked up (getent passwd x failed: NSS down)',
    ]);
  });

  it('goes through the real NSS lookup', async () => {
    const opts: ValidateOptions = { ...options(), runAsUser: 'nobody', lookupUser };
    expect(await validateJob(offer(flat({})), opts)).toEqual(job([step('S', ['true'], { user: 'nobody' })]));
    expect(await problemsOf(flat({ runAsUser: 'no-such-user-here' }), { ...opts, allowedUsers: ['no-such-user-here'] })).toEqual([
      'step 1 ("S"): runAsUser "no-such-user-here" does not exist on this device',
    ]);
  });
});

describe('validateJob: handlers', () => {
  it('REJECTS a non-executable handler, a symlink escaping its directory and a missing handler, naming each', async () => {
    const escapes = path.join(H, 'escapes-directory.sh');
    const target = path.resolve(H, '..', 'jobs', 'aws-echo.json');
    expect(await problemsOf(loadJobFixture('malformed/unsafe-handlers.json'))).toEqual([
      `step 1 ("Not Executable"): ${path.join(H, 'not-executable.sh')} is not executable (mode 0644); chmod +x it`,
      `step 2 ("Escapes"): ${escapes} is a symlink to ${target}, outside ${H}; a handler must stay inside its directory`,
      `step 3 ("Missing"): input.handler "no-such-handler" was not found in ${H}`,
    ]);
  });

  it('input.path must be one of handler_dirs', async () => {
    const document = { version: '1.0', steps: [{ name: 'E', type: 'runHandler', input: { handler: 'echo', path: '/usr/bin' } }] };
    expect(await problemsOf(document)).toEqual([`step 1 ("E"): input.path "/usr/bin" is not one of jobs.handler_dirs (${H})`]);
    const allowed = { version: '1.0', steps: [{ name: 'E', type: 'runHandler', input: { handler: 'echo', path: H } }] };
    expect(await validateJob(offer(allowed), options())).toEqual(job([step('E', { handler: 'echo', args: [] })]));
  });

  it('refuses handler names that are paths', async () => {
    const document = {
      version: '1.0',
      steps: [
        { name: 'A', type: 'runHandler', input: { handler: '../handlers/echo' } },
        { name: 'B', type: 'runHandler', input: { handler: '..' } },
        { name: 'C', type: 'runHandler', input: { handler: '' } },
        { name: 'D', type: 'runHandler', input: { handler: 7 } },
        { name: 'E', type: 'runHandler', input: {} },
        { name: 'F', type: 'runHandler', input: { handler: 'echo', args: 'a b' } },
        { name: 'G', type: 'runHandler', input: { handler: 'echo', args: ['a', 2] } },
        { name: 'H', type: 'runHandler', input: { handler: 'echo', path: 3 } },
      ],
    };
    expect(await problemsOf(document)).toEqual([
      'step 1 ("A"): input.handler "../handlers/echo" must be a plain file name without "/"',
      'step 2 ("B"): input.handler ".." must not start with "."',
      'step 3 ("C"): input.handler must not be empty',
      'step 4 ("D"): input.handler must be a string, got number 7',
      'step 5 ("E"): input.handler is missing; it must name an executable in jobs.handler_dirs',
      'step 6 ("F"): input.args must be an array of strings, got string "a b"',
      'step 7 ("G"): input.args[1] must be a string, got number 2',
      'step 8 ("H"): input.path must be a string ("default" or one of jobs.handler_dirs), got number 3',
    ]);
  });
});

describe('validateJob: malformed documents', () => {
  it('lists every problem of a document at once', async () => {
    expect(await problemsOf(loadJobFixture('malformed/every-problem.json'))).toEqual([
      'includeStdOut must be true or false (or the string "true" or "false"), got string "yes"',
      'conditions must be an array, got an object',
      'step 1 ("No Type"): type is missing; supported types are runCommand and runHandler',
      'step 2 ("Script"): type "runScript" is not supported; supported types are runCommand and runHandler',
      'step 3 ("Restart"): input.command must be a non-empty string or array of strings, got number 42',
      'step 4 ("Quote"): input.command has an unbalanced single quote at character 6',
      'step 5 ("Traversal"): input.handler "../bin/sh" must be a plain file name without "/"',
      'step 6 ("Flags"): runAsUser must be a string, got number 7',
      'step 6 ("Flags"): allowStdErr must be a non-negative integer (a JSON number), got number -1',
      'step 6 ("Flags"): ignoreStepFailure must be true or false (or the string "true" or "false"), got string "maybe"',
      'step 6 ("Flags"): input.timeoutSeconds must be a positive number of seconds up to 2147483, got number 0',
      'step 7: must be an object, got string "not a step"',
      'finalStep: cannot be a parallel group; it must be one step',
    ]);
  });

  it('refuses an old-schema operation that is not a string', async () => {
    expect(await problemsOf({ operation: 42, args: [] })).toEqual([
      "operation must be a non-empty string naming a handler (AWS IoT Device Client's old schema), got number 42",
    ]);
  });

  it.each<[unknown, string[]]>([
    [null, ['job_document is missing; it must be a JSON object with version "1.0" and steps']],
    [undefined, ['job_document is missing; it must be a JSON object with version "1.0" and steps']],
    [[], ['job_document must be a JSON object, got an empty array']],
    ['"just a string"', ['job_document must be a JSON object, got string "just a string"']],
    [42, ['job_document must be a JSON object, got number 42']],
    ['{"version": "1.0", ', ['job_document is a string but not valid JSON (Expected double-quoted property name in JSON at position 19)']],
    [{}, ['version is missing; it must be "1.0"', 'steps is missing; it must be a non-empty array of steps']],
    [{ version: 1.0, steps: [] }, ['version must be "1.0", got number 1', 'steps must be a non-empty array of steps, got an empty array']],
    [{ version: '2.0', steps: {} }, ['version must be "1.0", got string "2.0"', 'steps must be a non-empty array of steps, got an object']],
  ])('document %j', async (document, problems) => {
    expect(await problemsOf(document)).toEqual(problems);
  });

  it('REJECTS a document over 1 MiB, measured as JSON text, in both forms', async () => {
    const padding = 'x'.repeat(DOCUMENT_LIMITS.maxDocumentBytes);
    const document = { version: '1.0', _comment: padding, steps: [{ type: 'runCommand', input: { command: 'true' } }] };
    const bytes = Buffer.byteLength(JSON.stringify(document));
    const expected = [`job_document is ${bytes} bytes of JSON; at most 1048576 are allowed`];
    expect(await problemsOf(document)).toEqual(expected);
    expect(await problemsOf(JSON.stringify(document))).toEqual(expected);
  });

  it('checks conditions for shape like AWS, without evaluating them', async () => {
    const base = { version: '1.0', steps: [{ type: 'runCommand', input: { command: 'true' } }] };
    expect(
      await validateJob(offer({ ...base, conditions: [{ key: 'os', value: ['linux'], type: 'stringEqual' }] }), options()),
    ).toEqual(job([step('step 1', ['true'])]));
    expect(await problemsOf({ ...base, conditions: [{ value: [] }, 'x', { key: 'k', value: ['v'], type: 1 }] })).toEqual([
      'conditions[0].key must be a non-empty string, got nothing',
      'conditions[0].value must be a non-empty array of strings, got an empty array',
      'conditions[1] must be an object with key and value, got string "x"',
      'conditions[2].type must be a string, got number 1',
    ]);
  });

  it('REJECTS more than 100 steps, counting parallel members and finalStep', async () => {
    const one = { type: 'runCommand', input: { command: 'true' } };
    const ok = { version: '1.0', steps: [...Array(98).fill(one), { parallel: [one] }], finalStep: one };
    expect((await validateJob(offer(ok), options())).steps).toHaveLength(99);
    const tooMany = { version: '1.0', steps: [...Array(98).fill(one), { parallel: [one, one] }], finalStep: one };
    expect(await problemsOf(tooMany)).toEqual([
      'the job has 101 steps (parallel members and finalStep included); at most 100 are allowed',
    ]);
    // Many steps each with problems: still one clear problem, not thousands.
    expect(await problemsOf({ version: '1.0', steps: Array(5000).fill({ type: 'nope' }) })).toEqual([
      'the job has 5000 steps (parallel members and finalStep included); at most 100 are allowed',
    ]);
  });

  it('REJECTS a 10 KB step name clearly, without repeating it', async () => {
    const name = 'n'.repeat(10_240);
    const problems = await problemsOf(flat({ name }));
    expect(problems).toEqual([`step 1 ("${'n'.repeat(60)}…"): name is 10240 characters long; at most 255 are allowed`]);
  });

  it('counts name length in characters, not bytes, and refuses control characters', async () => {
    const name = 'é'.repeat(255);
    expect((await validateJob(offer(flat({ name })), options())).steps).toEqual([{ kind: 'step', step: step(name, ['true']) }]);
    expect(await problemsOf(flat({ name: 'a\nb' }))).toEqual([
      'step 1 ("a\\nb"): name must not contain control characters such as newlines',
    ]);
    expect(await problemsOf(flat({ name: 5 }))).toEqual(['step 1: name must be a string, got number 5']);
  });

  it('REJECTS too many or too long arguments', async () => {
    const many = ['echo', ...Array(1024).fill('a')];
    expect(await problemsOf(flat({ input: { command: many } }))).toEqual([
      'step 1 ("S"): input.command makes 1025 arguments; at most 1024 are allowed',
    ]);
    const long = ['echo', 'a'.repeat(128 * 1024)];
    expect(await problemsOf(flat({ input: { command: long } }))).toEqual([
      `step 1 ("S"): input.command makes ${5 + 128 * 1024 + 1} bytes of arguments; at most 131072 are allowed`,
    ]);
    const handler = { version: '1.0', steps: [{ name: 'S', type: 'runHandler', input: { handler: 'echo', args: Array(1023).fill('a') } }] };
    expect(await problemsOf(handler)).toEqual(['step 1 ("S"): input.args makes 1025 arguments; at most 1024 are allowed']);
  });

  it.each<[unknown, string]>([
    [undefined, 'step 1 ("S"): input.command is missing; it must be a non-empty string or array of strings'],
    ['', 'step 1 ("S"): input.command must be a non-empty string or array of strings, got an empty string'],
    ['   ', 'step 1 ("S"): input.command must be a non-empty string or array of strings, got string "   "'],
    [[], 'step 1 ("S"): input.command must be a non-empty string or array of strings, got an empty array'],
    [['ls', 3], 'step 1 ("S"): input.command[1] must be a string, got number 3'],
    [['', 'x'], 'step 1 ("S"): input.command[0] must not be empty'],
    [['ls', 'a\u0000b'], 'step 1 ("S"): input.command[1] must not contain NUL characters'],
    ['ls\u0000x', 'step 1 ("S"): input.command must not contain NUL characters'],
    [{ cmd: 'x' }, 'step 1 ("S"): input.command must be a non-empty string or array of strings, got an object'],
    ['df -h | grep root', 'step 1 ("S"): input.command uses shell syntax (|) but runs without a shell; set input.shell to true to run it with /bin/sh -c, or quote or escape it to pass it on literally'],
    ['docker restart,redis', 'step 1 ("S"): input.command is in comma form (it has an unescaped comma) but its first element "docker restart" contains whitespace; separate every word with a comma, or write the comma as \\, to split on blanks instead'],
  ])('input.command %j', async (command, problem) => {
    expect(await problemsOf(flat({ input: { command } }))).toEqual([problem]);
  });

  it('input.shell runs the string with /bin/sh -c and needs a string', async () => {
    expect((await validateJob(offer(flat({ input: { command: 'a | b', shell: 'true' } })), options())).steps).toEqual([
      { kind: 'step', step: { ...step('S', []), action: { type: 'runCommand', argv: ['/bin/sh', '-c', 'a | b'], shell: true } } },
    ]);
    expect(await problemsOf(flat({ input: { command: ['a'], shell: true } }))).toEqual([
      'step 1 ("S"): input.shell needs input.command as one string, got an array',
    ]);
    expect(await problemsOf(flat({ input: { command: 'a', shell: 1 } }))).toEqual([
      'step 1 ("S"): input.shell must be true or false (or the string "true" or "false"), got number 1',
    ]);
  });

  it('type and input must be there and be the right kind', async () => {
    const document = {
      version: '1.0',
      steps: [
        { name: 'A', type: 3 },
        { name: 'B', type: 'runCommand' },
        { name: 'C', type: 'runHandler', input: 'echo' },
        { action: 'runCommand' },
        { action: { name: 'E', type: 'runCommand', input: { command: 'true' } }, type: 'runCommand' },
      ],
    };
    expect(await problemsOf(document)).toEqual([
      'step 1 ("A"): type must be a string, got number 3; supported types are runCommand and runHandler',
      'step 2 ("B"): input is missing; runCommand needs input.command',
      'step 3 ("C"): input must be an object, got string "echo"',
      'step 4: action must be an object, got string "runCommand"',
      'step 5 ("E"): has action and also a flattened type or input; use one shape',
    ]);
  });

  it('allowStdErr takes JSON integers only; a numeric string is refused', async () => {
    expect((await validateJob(offer(flat({ allowStdErr: 5 })), options())).steps).toEqual([
      { kind: 'step', step: step('S', ['true'], { allowStdErr: 5 }) },
    ]);
    expect(await problemsOf(flat({ allowStdErr: '2' }))).toEqual([
      'step 1 ("S"): allowStdErr must be a non-negative integer (a JSON number), got string "2"',
    ]);
    expect(await problemsOf(flat({ allowStdErr: 1.5 }))).toEqual([
      'step 1 ("S"): allowStdErr must be a non-negative integer (a JSON number), got number 1.5',
    ]);
  });

  it.each<[unknown, boolean]>([
    [true, true],
    ['true', true],
    [false, false],
    ['false', false],
    [undefined, false],
  ])('ignoreStepFailure %j -> %s', async (value, expected) => {
    expect((await validateJob(offer(flat({ ignoreStepFailure: value })), options())).steps).toEqual([
      { kind: 'step', step: step('S', ['true'], { ignoreStepFailure: expected }) },
    ]);
  });

  it.each<[unknown, boolean]>([
    [undefined, false],
    [true, true],
    ['true', true],
    ['false', false],
  ])('includeStdOut %j -> %s (AWS defaults to false)', async (value, expected) => {
    const document = { ...(flat({}) as object), includeStdOut: value };
    expect((await validateJob(offer(document), options())).includeStdOut).toBe(expected);
  });

  it('parallel groups: no nesting, non-empty, no mixing with a step', async () => {
    const one = { name: 'M', type: 'runCommand', input: { command: 'true' } };
    const document = {
      version: '1.0',
      steps: [
        { name: 'P', parallel: [one, { name: 'Inner', parallel: [one] }] },
        { name: 'Q', parallel: [] },
        { name: 'R', parallel: [one], type: 'runCommand' },
        { parallel: 'x' },
      ],
    };
    expect(await problemsOf(document)).toEqual([
      'step 1.2 ("Inner"): a parallel group cannot contain another parallel group',
      'step 2 ("Q"): parallel must be a non-empty array of steps, got an empty array',
      'step 3 ("R"): has parallel and also type, action or input; a parallel group only holds steps',
      'step 4: parallel must be a non-empty array of steps, got string "x"',
    ]);
  });

  it('lists at most 100 problems and counts the rest', async () => {
    const bad = { type: 'runCommand', input: { command: 1 }, allowStdErr: -1 };
    const problems = await problemsOf({ version: '1.0', steps: Array(60).fill(bad) });
    expect(problems).toHaveLength(101);
    expect(problems[100]).toBe('and 20 more problems');
    expect(problems[0]).toBe('step 1: allowStdErr must be a non-negative integer (a JSON number), got number -1');
  });

  it('ignores unknown fields for forward compatibility', async () => {
    const document = {
      version: '1.0',
      _comment: 'x',
      futureField: { a: 1 },
      steps: [{ name: 'S', type: 'runCommand', input: { command: 'true', futureInput: 1 }, futureStepField: true }],
    };
    expect(await validateJob(offer(document), options())).toEqual(job([step('S', ['true'])]));
  });
});

describe('timeouts', () => {
  it('uses timeout_seconds when positive, else the default', async () => {
    expect((await validateJob(offer(flat({}), { timeoutSeconds: 3600 }), options())).timeoutMs).toBe(3_600_000);
    expect((await validateJob(offer(flat({}), { timeoutSeconds: null }), options())).timeoutMs).toBe(3_600_000);
    expect((await validateJob(offer(flat({}), { timeoutSeconds: null }), options({ defaultTimeoutMs: 5000 }))).timeoutMs).toBe(5000);
  });

  it.each<[number | null, number]>([
    [null, 7000],
    [0, 7000],
    [-5, 7000],
    [Number.NaN, 7000],
    [1.5, 1500],
    [0.0001, 1],
    [1e12, 2_147_483_647],
  ])('jobTimeoutMs(%s) -> %d', (seconds, ms) => {
    expect(jobTimeoutMs(seconds, 7000)).toBe(ms);
  });

  it('input.timeoutSeconds bounds one step', async () => {
    expect((await validateJob(offer(flat({ input: { command: 'true', timeoutSeconds: 2.5 } })), options())).steps).toEqual([
      { kind: 'step', step: step('S', ['true'], { timeoutMs: 2500 }) },
    ]);
    expect(await problemsOf(flat({ input: { command: 'true', timeoutSeconds: '10' } }))).toEqual([
      'step 1 ("S"): input.timeoutSeconds must be a positive number of seconds up to 2147483, got string "10"',
    ]);
  });
});

describe('validateJob: bounds on server data (issue 16 items 4 and 5)', () => {
  const nested = (levels: number): unknown => {
    let value: unknown = 1;
    for (let i = 0; i < levels; i += 1) value = { a: value };
    return value;
  };
  const valid = { version: '1.0', steps: [{ action: { name: 'ok', type: 'runCommand', input: { command: ['true'] } } }] };

  it('REJECTs with the problems parse-answer found, without looking at the document', async () => {
    expect(await problemsOf(null, options(), { problems: ['job_name is 300 characters long; at most 255 are allowed'] })).toEqual([
      'job_name is 300 characters long; at most 255 are allowed',
    ]);
  });

  it('REJECTs a document nested 2000 levels deep given directly (cloudjobs exec), as an object or a string', async () => {
    const deep = { ...valid, extra: nested(2000) };
    const why = 'job_document nests objects and arrays more than 32 levels deep';
    expect(await problemsOf(deep)).toEqual([why]);
    expect(await problemsOf(JSON.stringify(deep))).toEqual([why]);
  });

  it('accepts the same document 30 levels deep', async () => {
    await expect(validateJob(offer({ ...valid, extra: nested(30) }), options())).resolves.toMatchObject({ jobId: expect.any(String) });
  });
});

describe('validateJob: the document\'s own limits (extension)', () => {
  const MiB = 1024 * 1024;
  const ceiling = { memoryMax: 256 * MiB, tasksMax: 512, cpuQuota: 80 };
  const withLimits = (limits: unknown): unknown => ({ version: '1.0', limits, steps: [{ name: 'S', type: 'runCommand', input: { command: 'true' } }] });

  it('runs with lower limits it asks for, the ceiling for the rest', async () => {
    const validated = await validateJob(offer(withLimits({ memoryMax: '64MiB', cpuQuota: '25%' })), options({ limitCeiling: ceiling }));
    expect(validated.limits).toEqual({
      memoryMax: 64 * MiB,
      tasksMax: 512,
      cpuQuota: 25,
      sources: { memoryMax: 'document', tasksMax: 'config', cpuQuota: 'document' },
    });
  });

  it('REJECTS higher limits with the reason, beside the document\'s other problems', async () => {
    expect(await problemsOf({ ...(withLimits({ memoryMax: '512MiB' }) as object), version: '2.0' }, options({ limitCeiling: ceiling }))).toEqual([
      'version must be "1.0", got string "2.0"',
      "limits.memoryMax 512 MiB is above this device's jobs.memory_max of 256 MiB; a job may only lower its limits",
    ]);
  });

  it('a document without limits leaves them to the engine', async () => {
    expect((await validateJob(offer(flat({})), options({ limitCeiling: ceiling }))).limits).toBeUndefined();
  });
});
