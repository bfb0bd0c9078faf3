// Small hand-written checks for state files read back from disk. A validator
// returns the typed value or throws a ValidationProblem saying what is wrong.

/** What a validator throws: the reason a state file is not what we wrote. */
export class ValidationProblem extends Error {}

/** Turns raw parsed JSON into a typed value, or throws ValidationProblem. */
export type Validator<T> = (value: unknown) => T;

/** Fails validation with `reason`. */
export function failValidation(reason: string): never {
  throw new ValidationProblem(reason);
}

/** Requires a plain JSON object. */
export function expectRecord(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    failValidation(`${where}: expected an object, got ${describeValue(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Requires `record.version` to be `version`. */
export function expectVersion(record: Record<string, unknown>, version: number): void {
  if (record.version !== version) failValidation(`version: expected ${version}, got ${describeValue(record.version)}`);
}

/** Requires a string field. */
export function expectString(record: Record<string, unknown>, key: string): string {
  const value = record[key];
  if (typeof value !== 'string') failValidation(`${key}: expected a string, got ${describeValue(value)}`);
  return value;
}

/** Requires a non-empty string field. */
export function expectNonEmptyString(record: Record<string, unknown>, key: string): string {
  const value = expectString(record, key);
  if (value.length === 0) failValidation(`${key}: expected a non-empty string, got ""`);
  return value;
}

/** Requires a string or null field. */
export function expectNullableString(record: Record<string, unknown>, key: string): string | null {
  if (record[key] === null) return null;
  return expectString(record, key);
}

/** Accepts an absent field (undefined) or a string. */
export function expectOptionalString(record: Record<string, unknown>, key: string): string | undefined {
  if (record[key] === undefined) return undefined;
  return expectString(record, key);
}

/** Requires an integer field of at least `min`. */
export function expectInteger(record: Record<string, unknown>, key: string, min = Number.MIN_SAFE_INTEGER): number {
  const value = record[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    failValidation(`${key}: expected an integer of at least ${min}, got ${describeValue(value)}`);
  }
  return value;
}

/** Requires an integer or null field. */
export function expectNullableInteger(record: Record<string, unknown>, key: string): number | null {
  if (record[key] === null) return null;
  return expectInteger(record, key);
}

/** Requires a finite non-negative number field. */
export function expectNonNegativeNumber(record: Record<string, unknown>, key: string): number {
  const value = record[key];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    failValidation(`${key}: expected a non-negative number, got ${describeValue(value)}`);
  }
  return value;
}

/** Requires a boolean field. */
export function expectBoolean(record: Record<string, unknown>, key: string): boolean {
  const value = record[key];
  if (typeof value !== 'boolean') failValidation(`${key}: expected true or false, got ${describeValue(value)}`);
  return value;
}

/** Requires an array field. */
export function expectArray(record: Record<string, unknown>, key: string): unknown[] {
  const value = record[key];
  if (!Array.isArray(value)) failValidation(`${key}: expected an array, got ${describeValue(value)}`);
  return value;
}

/** Requires a string field holding an ISO-8601 timestamp. */
export function expectTimestamp(record: Record<string, unknown>, key: string): string {
  const value = expectString(record, key);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(Date.parse(value))) {
    failValidation(`${key}: expected an ISO timestamp, got ${describeValue(value)}`);
  }
  return value;
}

/** Requires one of `values`. */
export function expectOneOf<T extends string>(record: Record<string, unknown>, key: string, values: readonly T[]): T {
  const value = record[key];
  if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
    failValidation(`${key}: expected one of ${values.join(', ')}, got ${describeValue(value)}`);
  }
  return value as T;
}

/** Describes a value briefly for a validation message (never the whole value). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
