// What the agent accepts of a job offer before anything is stored or run: a
// job id that is one URL path segment, a bounded job name, a job document
// nested no deeper than any real one. Server data is hostile: every check
// here is iterative and stops early, so no input can exhaust the stack.
// A bottom module: imports nothing of ours.

/** Characters of a job id (ids are UUIDs or similar in practice). */
export const MAX_JOB_ID_CHARS = 256;
/** Characters of a job name, as for step names (the README's "names to 255 characters"). */
export const MAX_JOB_NAME_CHARS = 255;
/**
 * Nesting of a job document (the top object is level 1). The deepest real
 * shape, a parallel member's runHandler args, is 7 levels; 32 leaves room for
 * extensions and stays far below what recursive copies (structuredClone,
 * JSON.stringify) can take.
 */
export const MAX_DOCUMENT_DEPTH = 32;

/**
 * Returns why `jobId` cannot name its job in `PATCH .../jobs/{jobId}/status`,
 * or null. Beyond "/" the URL layer drops "." and ".." segments and servers
 * decode %2E, %2F and "\": anything that could address another path than the
 * job's own is refused (encodeURIComponent leaves "." and ".." as they are).
 */
export function checkJobId(jobId: string): string | null {
  return checkPathSegment(jobId, MAX_JOB_ID_CHARS);
}

/** The same rule for any server-given id that goes into a URL path (a device uuid from registration or the supervisor). */
export function checkPathSegment(id: string, maxChars = MAX_JOB_ID_CHARS): string | null {
  if (id.trim() === '') return 'it is empty';
  if (id.length > maxChars) return `it is ${id.length} characters long; at most ${maxChars} are allowed`;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(id)) return 'it contains control characters';
  const decoded = decodeFully(id);
  if (/[/\\]/.test(decoded)) return 'it contains "/" or "\\" (also as a %-escape): it is not one URL path segment';
  if (decoded === '.' || decoded === '..') return `it is "${decoded}" (also as a %-escape), which URLs remove as a path segment`;
  return null;
}

// Percent-decodes until nothing changes (a server may decode more than once); a malformed escape stops it.
function decodeFully(text: string): string {
  let current = text;
  for (let i = 0; i < 4 && current.includes('%'); i += 1) {
    let next: string;
    try {
      next = decodeURIComponent(current);
    } catch {
      break;
    }
    if (next === current) break;
    current = next;
  }
  return current;
}

/** Returns whether `value` nests objects/arrays deeper than `max` levels (the top one is level 1); iterative. */
export function isNestedDeeperThan(value: unknown, max: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  const stack: { node: object; depth: number }[] = [{ node: value, depth: 1 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    if (item.depth > max) return true;
    for (const child of Object.values(item.node)) {
      if (child !== null && typeof child === 'object') stack.push({ node: child as object, depth: item.depth + 1 });
    }
  }
  return false;
}
