// File names for server-controlled ids (job ids): safe whatever the id holds
// ('/', '..', NUL, 10 KB), unique per id, and still recognisable in `ls`.
import { createHash } from 'node:crypto';

const READABLE_PREFIX_MAX = 40;

/** Returns a file-name-safe, collision-resistant key for `id`: readable prefix + SHA-256. */
export function encodeFileKey(id: string): string {
  const readable = id.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, READABLE_PREFIX_MAX);
  const digest = createHash('sha256').update(id, 'utf8').digest('hex');
  return `${readable}-${digest}`;
}

/** Returns whether `name` looks like `<encodeFileKey(...)><suffix>`. */
export function isFileKeyName(name: string, suffix: string): boolean {
  if (!name.endsWith(suffix)) return false;
  return /^[A-Za-z0-9_-]{0,40}-[0-9a-f]{64}$/.test(name.slice(0, name.length - suffix.length));
}
