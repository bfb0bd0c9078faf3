// What PostgreSQL's JSONB does to a document it stores: members reordered,
// shorter names first and names of one length bytewise, and its text form
// `{"a": 1, "bb": [1, 2]}` (a space after ':' and ','). The reference cloud
// applies it to jobs queued with `jsonb: true`, as a real server's job table
// does, so signed documents are tested against what servers hand out.

// Test documents are nested a few levels; a deeper one is refused, not recursed into.
const MAX_DEPTH = 64;

/** Returns `value` with every object's members in JSONB order. */
export function reorderAsJsonb(value: unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new Error(`document nested more than ${MAX_DEPTH} levels`);
  if (Array.isArray(value)) return value.map((item) => reorderAsJsonb(item, depth + 1));
  if (value === null || typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(record).sort(compareJsonbNames)) out[name] = reorderAsJsonb(record[name], depth + 1);
  return out;
}

/** JSONB's member order: shorter UTF-8 name first, then bytewise. */
export function compareJsonbNames(a: string, b: string): number {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length - y.length || Buffer.compare(x, y);
}

/** The text PostgreSQL prints for a jsonb value (`jsonb::text`), members in JSONB order. */
export function jsonbText(value: unknown, depth = 0): string {
  if (depth > MAX_DEPTH) throw new Error(`document nested more than ${MAX_DEPTH} levels`);
  if (Array.isArray(value)) return `[${value.map((item) => jsonbText(item, depth + 1)).join(', ')}]`;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const record = value as Record<string, unknown>;
  const names = Object.keys(record).sort(compareJsonbNames);
  return `{${names.map((name) => `${JSON.stringify(name)}: ${jsonbText(record[name], depth + 1)}`).join(', ')}}`;
}
