// The JSON schema of `cloudjobs status --json` (test/status.schema.json), compiled once per test file.
import { readFileSync } from 'node:fs';
import Ajv from 'ajv';

/** Validates a value against the status schema; returns the problems ([] when it conforms). */
export function checkStatusJson(value: unknown): string[] {
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  const validate = ajv.compile(JSON.parse(readFileSync('test/status.schema.json', 'utf8')) as object);
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}
