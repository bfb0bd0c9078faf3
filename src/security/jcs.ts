// RFC 8785 JSON Canonicalization Scheme: the bytes a job document's signature
// covers. Members sorted by their names' UTF-16 code units, no whitespace,
// strings and numbers serialized as ECMAScript's JSON.stringify does them
// (Number::toString: 1e21, 1e-7, 0.1, -0 as 0). A bottom module.
//
// The input is hostile server data: nesting and output size are bounded, and
// what JCS cannot represent (lone surrogates, non-finite numbers, values JSON
// has no form for) is refused rather than guessed.

/** Bounds of one canonicalization. */
export interface CanonicalLimits {
  /** Nesting of objects and arrays (the top one is level 1). */
  maxDepth: number;
  /** UTF-16 code units of output (a bound on the UTF-8 bytes within a factor of 3). */
  maxChars: number;
}

/** The result: the canonical text, or why the value has none. */
export type Canonical = { ok: true; text: string } | { ok: false; problem: string };

// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

class Refused extends Error {}

/** Serializes `value` as RFC 8785 canonical JSON text (encode it as UTF-8 to sign or verify). */
export function canonicalize(value: unknown, limits: CanonicalLimits): Canonical {
  const out: string[] = [];
  let chars = 0;
  const emit = (text: string): void => {
    chars += text.length;
    if (chars > limits.maxChars) throw new Refused(`its canonical form is longer than ${limits.maxChars} characters`);
    out.push(text);
  };
  // Problems name no member: names are server text, and a reason only needs the kind of fault.
  const write = (node: unknown, depth: number): void => {
    if (node === null || typeof node === 'boolean') return emit(String(node));
    if (typeof node === 'number') return emit(formatNumber(node));
    if (typeof node === 'string') return emit(formatString(node));
    if (typeof node !== 'object') throw new Refused(`it holds a ${typeof node}, which JSON has no form for`);
    if (depth > limits.maxDepth) throw new Refused(`it nests objects and arrays more than ${limits.maxDepth} levels deep`);
    if (Array.isArray(node)) {
      emit('[');
      node.forEach((item: unknown, index) => {
        if (index > 0) emit(',');
        write(item, depth + 1);
      });
      return emit(']');
    }
    const record = node as Record<string, unknown>;
    // Default sort compares UTF-16 code units, which is what RFC 8785 3.2.3 asks.
    const names = Object.keys(record).sort();
    emit('{');
    names.forEach((name, index) => {
      if (index > 0) emit(',');
      emit(formatString(name));
      emit(':');
      write(record[name], depth + 1);
    });
    return emit('}');
  };
  try {
    write(value, 1);
  } catch (error) {
    if (error instanceof Refused) return { ok: false, problem: error.message };
    throw error;
  }
  return { ok: true, text: out.join('') };
}

// ECMAScript Number::toString is what RFC 8785 3.2.2.3 prescribes; String(-0) is "0".
function formatNumber(value: number): string {
  if (!Number.isFinite(value)) throw new Refused(`it holds the number ${value}, which JSON has no form for`);
  return String(value);
}

// JSON.stringify escapes exactly what RFC 8785 3.2.2.2 asks (", \, controls with
// \b \t \n \f \r or \u00xx lowercase); lone surrogates it would escape are refused.
function formatString(value: string): string {
  if (LONE_SURROGATE.test(value)) throw new Refused('a string in it holds a lone UTF-16 surrogate, which has no UTF-8 form');
  return JSON.stringify(value);
}
