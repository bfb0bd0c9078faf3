import { describe, expect, it } from 'vitest';
import { lookupUser, parseInitgroupsLine, parsePasswdLine } from '../../../src/jobs/users.js';

describe('lookupUser', () => {
  it('finds root through NSS with its primary group', async () => {
    const root = await lookupUser('root');
    expect(root).toMatchObject({ name: 'root', uid: 0, gid: 0, home: '/root' });
    expect(root?.groups).toContain(0);
  });

  it('returns null for a missing user and for names getent could misread', async () => {
    expect(await lookupUser('nosuchuser-cloudjobs')).toBeNull();
    expect(await lookupUser('-s')).toBeNull();
    expect(await lookupUser('a:b')).toBeNull();
    expect(await lookupUser('')).toBeNull();
  });
});

describe('parsePasswdLine / parseInitgroupsLine', () => {
  it('parses a passwd line and refuses a broken one', () => {
    expect(parsePasswdLine('pi:x:1000:1000:,,,:/home/pi:/bin/bash')).toEqual({
      name: 'pi',
      uid: 1000,
      gid: 1000,
      home: '/home/pi',
      shell: '/bin/bash',
    });
    expect(parsePasswdLine('pi:x:abc:1000:,,,:/home/pi:/bin/bash')).toBeNull();
    expect(parsePasswdLine('pi:x:1000')).toBeNull();
  });

  it('parses the gids of an initgroups line', () => {
    expect(parseInitgroupsLine('pi                    4 20 27 1000')).toEqual([4, 20, 27, 1000]);
    expect(parseInitgroupsLine('root                 ')).toEqual([]);
  });
});
