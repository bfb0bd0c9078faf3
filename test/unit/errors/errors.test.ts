import { describe, expect, it } from 'vitest';
import { classifyLocalFault, LoopDiedError, StateIoError } from '../../../src/errors/errors.js';
import { CloudError } from '../../../src/cloud/cloud-error.js';
import { describeIoError } from '../../../src/state/atomic-file.js';

function sysError(code: string, text: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${text}, open '${path}'`), { code, path });
}

describe('classifyLocalFault', () => {
  it('names path and errno of a wrapped state write', () => {
    const error = describeIoError('write', '/var/lib/cloudjobs/journal/a.json', sysError('ENOSPC', 'no space left on device', '/var/lib/cloudjobs/journal/.a.json.tmp'));
    expect(error).toBeInstanceOf(StateIoError);
    expect(classifyLocalFault(error)).toEqual({
      path: '/var/lib/cloudjobs/journal/a.json',
      errno: 'ENOSPC',
      message: '/var/lib/cloudjobs/journal/a.json: ENOSPC: no space left on device',
    });
  });

  it('takes a bare Node error on a path with a storage errno', () => {
    expect(classifyLocalFault(sysError('EROFS', 'read-only file system', '/run/cloudjobs/status.json'))).toEqual({
      path: '/run/cloudjobs/status.json',
      errno: 'EROFS',
      message: '/run/cloudjobs/status.json: EROFS: read-only file system',
    });
  });

  it('a state error without errno keeps its sentence', () => {
    const error = new StateIoError('/var/lib/cloudjobs', '/var/lib/cloudjobs exists but is not a directory', { errno: 'ENOTDIR' });
    expect(classifyLocalFault(error)?.message).toBe('/var/lib/cloudjobs: ENOTDIR: /var/lib/cloudjobs exists but is not a directory');
  });

  it('a cause chain that is a cycle ends (loop audit, issue 21)', () => {
    const inner = new Error('disk on fire');
    const outer = new StateIoError('/var/lib/cloudjobs', 'wrapped', { errno: 'EIO', cause: inner });
    (inner as { cause?: unknown }).cause = outer;
    expect(classifyLocalFault(outer)?.path).toBe('/var/lib/cloudjobs');
  });

  it('cloud failures and bugs are not local faults', () => {
    expect(classifyLocalFault(new CloudError('network', 'connect ECONNREFUSED 127.0.0.1:1'))).toBeNull();
    expect(classifyLocalFault(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBeNull();
    expect(classifyLocalFault(new TypeError('x is undefined'))).toBeNull();
    expect(classifyLocalFault('a string')).toBeNull();
  });
});

describe('LoopDiedError', () => {
  it('names the loop and keeps the cause', () => {
    const cause = new Error('boom');
    const error = new LoopDiedError('delivery', cause);
    expect(error.code).toBe('LOOP_DIED');
    expect(error.message).toBe('the delivery loop died: boom');
    expect(error.cause).toBe(cause);
  });
});
