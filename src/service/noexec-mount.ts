// Which mount a path lives on, and whether it is mounted noexec, from
// /proc/self/mountinfo (proc(5)). The kernel refuses to map a shared object
// from a noexec mount with a bare "failed to map segment from shared object";
// this names the mount so the message can say why and what to do.

/** One mount of /proc/self/mountinfo: its mount point and per-mount options. */
export interface MountEntry {
  mountPoint: string;
  options: readonly string[];
}

/** Parses mountinfo text; lines that do not have the proc(5) shape are skipped. */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    if (fields.length < 10 || !fields.includes('-')) continue;
    entries.push({ mountPoint: unescapeField(fields[4] as string), options: (fields[5] as string).split(',') });
  }
  return entries;
}

/** The mount holding `file` (an absolute, symlink-free path): the longest mount point above it, the last one mounted on ties. */
export function findMount(file: string, mounts: readonly MountEntry[]): MountEntry | null {
  let best: MountEntry | null = null;
  for (const mount of mounts) {
    const point = mount.mountPoint;
    const holds = point === '/' || file === point || file.startsWith(`${point}/`);
    if (holds && (best === null || point.length >= best.mountPoint.length)) best = mount;
  }
  return best;
}

/** The mount point of the noexec mount holding `file`, or null when its mount allows exec (or is unknown). */
export function findNoexecMount(file: string, mountinfo: string): string | null {
  const mount = findMount(file, parseMountinfo(mountinfo));
  return mount !== null && mount.options.includes('noexec') ? mount.mountPoint : null;
}

// mountinfo writes space, tab, newline and backslash in paths as \040, \011, \012, \134.
function unescapeField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
