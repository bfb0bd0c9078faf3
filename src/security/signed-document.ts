// Signed job documents (README "Signed jobs"): the document with one more
// top-level member, `"signature": {"alg": "Ed25519", "keyId": "<16 hex>",
// "value": "<base64 of 64 bytes>"}`, over the RFC 8785 canonical UTF-8 bytes
// of the document without that member. The claims `expires`, `devices` and
// `nonce` are members of the signed document, so the signature covers them.
//
// This module decides from the document, the trusted keys, the device and the
// time; the nonce store (nonce-store.ts) is asked by the caller afterwards.
import { sign, verify, type KeyObject } from 'node:crypto';
import { MAX_DOCUMENT_DEPTH } from '../contract/limits.js';
import { showText } from '../log/escape.js';
import { canonicalize } from './jcs.js';

/** The member that carries the signature. */
export const SIGNATURE_MEMBER = 'signature';

/** Bounds on what is read; a job document is refused above 1 MiB anyway (jobs/document.ts). */
export const SIGNED_DOCUMENT_LIMITS = {
  maxTextBytes: 1024 * 1024,
  maxCanonicalChars: 2 * 1024 * 1024,
  maxDevices: 10_000,
  maxNonceChars: 128,
} as const;

/** The claims a signed document may carry. */
export interface Claims {
  /** `expires` as ms since the epoch, with its text. */
  expires: { at: number; text: string } | null;
  devices: readonly string[] | null;
  nonce: string | null;
}

/** The document split into its signature member and the rest. */
export type SignedParts =
  | { kind: 'unsigned'; body: Record<string, unknown> | null }
  | { kind: 'malformed'; problem: string }
  | { kind: 'signed'; body: Record<string, unknown>; keyId: string; value: Buffer };

/** What verification found; `reason` names the failure as the REJECTED report shows it. */
export type Verdict =
  | { ok: true; signed: false }
  | { ok: true; signed: true; keyId: string; claims: Claims }
  | { ok: false; reason: string; keyId?: string; claims?: Claims };

/** What verifyDocument checks against. */
export interface VerifyContext {
  keys: ReadonlyMap<string, { key: KeyObject }>;
  /** `[security] require_signed_jobs`. */
  required: boolean;
  /** This device's uuid, or null when it is unknown (a `devices` claim then refuses). */
  deviceUuid: string | null;
  /** Wall-clock ms since the epoch (`expires` is a calendar time). */
  now: number;
  /** Where the keys come from, for reasons ("no key in /etc/cloudjobs/trusted-keys.d"). */
  keysDir: string;
}

const KEY_ID = /^[0-9a-f]{16}$/;
// 64 bytes in standard base64 with padding: 85 full characters, one with 2 spare bits, "==".
const SIGNATURE_VALUE = /^[A-Za-z0-9+/]{85}[AQgw]==$/;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
// Control characters (C0, DEL, C1) are not printable; everything else is.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Splits a document (an object, or JSON text parsed first) into its signature
 * member and the signed body. A document that is not a JSON object carries no
 * signature: it counts as unsigned, and validation says what is wrong with it.
 */
export function readSignedParts(document: unknown): SignedParts {
  let value = document;
  if (typeof document === 'string' && Buffer.byteLength(document) <= SIGNED_DOCUMENT_LIMITS.maxTextBytes) {
    try {
      value = JSON.parse(document) as unknown;
    } catch {
      return { kind: 'unsigned', body: null };
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { kind: 'unsigned', body: null };
  const record = value as Record<string, unknown>;
  if (!Object.hasOwn(record, SIGNATURE_MEMBER)) return { kind: 'unsigned', body: record };
  const { [SIGNATURE_MEMBER]: signature, ...body } = record;
  const problem = checkSignatureMember(signature);
  if (problem !== null) return { kind: 'malformed', problem };
  const member = signature as { keyId: string; value: string };
  return { kind: 'signed', body, keyId: member.keyId, value: Buffer.from(member.value, 'base64') };
}

function checkSignatureMember(signature: unknown): string | null {
  if (signature === null || typeof signature !== 'object' || Array.isArray(signature)) {
    return 'signature must be an object with alg, keyId and value';
  }
  const member = signature as Record<string, unknown>;
  const extra = Object.keys(member).filter((name) => !['alg', 'keyId', 'value'].includes(name));
  if (extra.length > 0) return `signature has members other than alg, keyId and value (${showText(extra.join(', '), 80)})`;
  if (member.alg !== 'Ed25519') return `signature.alg must be "Ed25519", got ${describe(member.alg)}`;
  if (typeof member.keyId !== 'string' || !KEY_ID.test(member.keyId)) {
    return `signature.keyId must be 16 lowercase hex digits, got ${describe(member.keyId)}`;
  }
  if (typeof member.value !== 'string' || !SIGNATURE_VALUE.test(member.value)) {
    return 'signature.value must be the 64-byte signature in standard base64 with padding (88 characters)';
  }
  return null;
}

/** The UTF-8 bytes a signature covers: the canonical form of the body (the document without `signature`). */
export function signedBytes(body: Record<string, unknown>): { ok: true; bytes: Buffer } | { ok: false; problem: string } {
  const canonical = canonicalize(body, { maxDepth: MAX_DOCUMENT_DEPTH, maxChars: SIGNED_DOCUMENT_LIMITS.maxCanonicalChars });
  if (!canonical.ok) return { ok: false, problem: `the document has no canonical form: ${canonical.problem}` };
  return { ok: true, bytes: Buffer.from(canonical.text, 'utf8') };
}

/** Reads the claims of a signed body; a claim of the wrong form is a problem (the signer's mistake, never guessed at). */
export function readClaims(body: Record<string, unknown>): { ok: true; claims: Claims } | { ok: false; problem: string } {
  let expires: Claims['expires'] = null;
  if (body.expires !== undefined) {
    const at = typeof body.expires === 'string' ? parseRfc3339(body.expires) : null;
    if (at === null) return { ok: false, problem: `expires must be an RFC 3339 time such as 2026-12-31T23:59:59Z, got ${describe(body.expires)}` };
    expires = { at, text: body.expires as string };
  }
  let devices: string[] | null = null;
  if (body.devices !== undefined) {
    const list = body.devices;
    if (!Array.isArray(list) || list.length === 0 || list.length > SIGNED_DOCUMENT_LIMITS.maxDevices || !list.every((d) => typeof d === 'string' && d !== '')) {
      return { ok: false, problem: `devices must be a non-empty array of device uuids (at most ${SIGNED_DOCUMENT_LIMITS.maxDevices}), got ${describe(list)}` };
    }
    devices = list as string[];
  }
  let nonce: string | null = null;
  if (body.nonce !== undefined) {
    const text = body.nonce;
    const chars = typeof text === 'string' ? [...text].length : 0;
    if (typeof text !== 'string' || chars < 1 || chars > SIGNED_DOCUMENT_LIMITS.maxNonceChars || CONTROL.test(text)) {
      return { ok: false, problem: `nonce must be 1 to ${SIGNED_DOCUMENT_LIMITS.maxNonceChars} printable characters, got ${describe(text)}` };
    }
    if (expires === null) return { ok: false, problem: 'nonce needs expires: a nonce is remembered until the document expires' };
    nonce = text;
  }
  return { ok: true, claims: { expires, devices, nonce } };
}

/** Decides whether a document may run here, except for its nonce (see nonce-store.ts). */
export function verifyDocument(document: unknown, context: VerifyContext): Verdict {
  const parts = readSignedParts(document);
  if (parts.kind === 'malformed') return { ok: false, reason: `malformed signature member: ${parts.problem}` };
  if (parts.kind === 'unsigned') {
    if (!context.required) return { ok: true, signed: false };
    return { ok: false, reason: 'unsigned: this agent runs only signed job documents (security.require_signed_jobs) and this one has no signature member' };
  }
  const { keyId } = parts;
  const trusted = context.keys.get(keyId);
  if (!trusted) return { ok: false, keyId, reason: `unknown key id ${keyId}: no key in ${context.keysDir} has it` };
  const bytes = signedBytes(parts.body);
  if (!bytes.ok) return { ok: false, keyId, reason: `signature does not verify with key ${keyId}: ${bytes.problem}` };
  if (!verify(null, bytes.bytes, trusted.key, parts.value)) {
    return { ok: false, keyId, reason: `signature does not verify with key ${keyId}: the document was changed after it was signed, or signed with another key` };
  }
  const read = readClaims(parts.body);
  if (!read.ok) return { ok: false, keyId, reason: `malformed claim: ${read.problem}` };
  const { claims } = read;
  if (claims.expires !== null && context.now >= claims.expires.at) {
    return { ok: false, keyId, claims, reason: `expired at ${claims.expires.text} (this device's clock says ${new Date(context.now).toISOString()})` };
  }
  if (claims.devices !== null && (context.deviceUuid === null || !claims.devices.includes(context.deviceUuid))) {
    const self = context.deviceUuid === null ? 'this device\'s uuid is not known here' : `it lists ${claims.devices.length} device(s), not ${context.deviceUuid}`;
    return { ok: false, keyId, claims, reason: `not for this device: ${self}` };
  }
  return { ok: true, signed: true, keyId, claims };
}

/** Signs `body` (its `signature` member, if any, is replaced) with an Ed25519 private key; returns the signed document. */
export function signDocument(body: Record<string, unknown>, privateKey: KeyObject, keyId: string): Record<string, unknown> {
  const { [SIGNATURE_MEMBER]: _old, ...rest } = body;
  const bytes = signedBytes(rest);
  if (!bytes.ok) throw new Error(bytes.problem);
  const value = sign(null, bytes.bytes, privateKey).toString('base64');
  return { ...rest, [SIGNATURE_MEMBER]: { alg: 'Ed25519', keyId, value } };
}

/** Parses an RFC 3339 date-time (with its offset) into ms since the epoch; null when it is not one. */
export function parseRfc3339(text: string): number | null {
  const match = RFC3339.exec(text);
  if (!match) return null;
  const [, y, mo, d, h, mi, s] = match.map(Number) as number[];
  if (mo! < 1 || mo! > 12 || d! < 1 || d! > 31 || h! > 23 || mi! > 59 || s! > 59) return null;
  const at = Date.parse(text.toUpperCase().replace(' ', 'T'));
  if (!Number.isFinite(at)) return null;
  // Date.parse rolls 2026-02-31 over to March: refuse such days instead
  const day = new Date(Date.UTC(y!, mo! - 1, d!));
  if (day.getUTCDate() !== d) return null;
  return at;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return showText(JSON.stringify(value), 80);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : showText(String(value), 80);
}
