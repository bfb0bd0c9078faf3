// The one walk from a path up to "/" that root's ownership checks use
// (handler directories, work_dir): whoever can write any directory on the way
// could swap what lies below it for a symlink.
import path from 'node:path';

/** Returns the directories above `p` (made absolute and normalised first), nearest first, ending with "/". */
export function ancestorsOf(p: string): string[] {
  const out: string[] = [];
  let current = path.dirname(path.resolve(p));
  for (;;) {
    out.push(current);
    const parent = path.dirname(current);
    if (parent === current) return out;
    current = parent;
  }
}
