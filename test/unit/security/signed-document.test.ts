// Every verdict of verifyDocument, with its reason as the REJECTED report shows it.
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../../src/security/jcs.js';
import { parseRfc3339, readClaims, signDocument, verifyDocument, type VerifyContext } from '../../../src/security/signed-document.js';
import { keyIdOf } from '../../../src/security/trusted-keys.js';

const pair = generateKeyPairSync('ed25519');
const keyId = keyIdOf(pair.publicKey);
const DEVICE = '0b6f4a52-3c1d-4f6e-9a0b-7d2c5e8f1a34';
const NOW = Date.parse('2026-12-06T10:00:00Z');
const DOC = { version: '1.0', steps: [{ action: { type: 'runCommand', input: { command: 'true' } } }] };

function context(over: Partial<VerifyContext> = {}): VerifyContext {
  return { keys: new Map([[keyId, { key: pair.publicKey }]]), required: false, deviceUuid: DEVICE, now: NOW, keysDir: '/keys', ...over };
}
const signed = (extra: Record<string, unknown> = {}) => signDocument({ ...DOC, ...extra }, pair.privateKey, keyId);

describe('verifyDocument', () => {
  it('runs an unsigned document when signatures are not required, refuses it when they are', () => {
    expect(verifyDocument(DOC, context())).toEqual({ ok: true, signed: false });
    expect(verifyDocument(DOC, context({ required: true }))).toEqual({
      ok: false,
      reason: 'unsigned: this agent runs only signed job documents (security.require_signed_jobs) and this one has no signature member',
    });
  });

  it('accepts a signed document with its claims, and checks it even when signatures are not required', () => {
    expect(verifyDocument(signed({ expires: '2026-12-07T00:00:00Z', devices: [DEVICE], nonce: 'abc' }), context())).toEqual({
      ok: true,
      signed: true,
      keyId,
      claims: { expires: { at: Date.parse('2026-12-07T00:00:00Z'), text: '2026-12-07T00:00:00Z' }, devices: [DEVICE], nonce: 'abc' },
    });
    const forged = { ...signed(), steps: [{ action: { type: 'runCommand', input: { command: 'rm -rf /' } } }] };
    expect(verifyDocument(forged, context())).toEqual({
      ok: false,
      keyId,
      reason: `signature does not verify with key ${keyId}: the document was changed after it was signed, or signed with another key`,
    });
  });

  it('refuses an unknown key id', () => {
    expect(verifyDocument(signed(), context({ keys: new Map() }))).toEqual({ ok: false, keyId, reason: `unknown key id ${keyId}: no key in /keys has it` });
  });

  it('refuses an expired document, naming when', () => {
    expect(verifyDocument(signed({ expires: '2026-12-06T09:59:59Z' }), context())).toMatchObject({
      ok: false,
      reason: 'expired at 2026-12-06T09:59:59Z (this device\'s clock says 2026-12-06T10:00:00.000Z)',
    });
    expect(verifyDocument(signed({ expires: '2026-12-06T10:00:01+00:00' }), context())).toMatchObject({ ok: true });
  });

  it('refuses a document for other devices, or any devices claim when this uuid is unknown', () => {
    expect(verifyDocument(signed({ devices: ['other'] }), context())).toMatchObject({ ok: false, reason: `not for this device: it lists 1 device(s), not ${DEVICE}` });
    expect(verifyDocument(signed({ devices: [DEVICE] }), context({ deviceUuid: null }))).toMatchObject({
      ok: false,
      reason: 'not for this device: this device\'s uuid is not known here',
    });
  });

  it('refuses malformed signature members, each naming the fault', () => {
    const good = signed().signature as Record<string, string>;
    const cases: [unknown, string][] = [
      ['x', 'signature must be an object with alg, keyId and value'],
      [{ ...good, extra: 1 }, 'signature has members other than alg, keyId and value (extra)'],
      [{ ...good, alg: 'RS256' }, 'signature.alg must be "Ed25519", got "RS256"'],
      [{ ...good, keyId: keyId.toUpperCase() }, `signature.keyId must be 16 lowercase hex digits, got "${keyId.toUpperCase()}"`],
      [{ ...good, value: good.value!.replace(/==$/, '') }, 'signature.value must be the 64-byte signature in standard base64 with padding (88 characters)'],
      [{ ...good, value: `${'A'.repeat(86)}==`.replace(/^A/, '-') }, 'signature.value must be the 64-byte signature in standard base64 with padding (88 characters)'],
    ];
    for (const [signature, problem] of cases) {
      expect(verifyDocument({ ...DOC, signature }, context())).toEqual({ ok: false, reason: `malformed signature member: ${problem}` });
    }
    // not a JSON object at all: no signature; validation names what is wrong with it
    expect(verifyDocument('{"version":', context())).toEqual({ ok: true, signed: false });
    expect(verifyDocument([DOC], context({ required: true }))).toMatchObject({ ok: false, reason: expect.stringMatching(/^unsigned: /) });
  });

  it('refuses claims of the wrong form once the signature verifies', () => {
    expect(verifyDocument(signed({ expires: 'tomorrow' }), context())).toMatchObject({
      ok: false,
      reason: 'malformed claim: expires must be an RFC 3339 time such as 2026-12-31T23:59:59Z, got "tomorrow"',
    });
    expect(verifyDocument(signed({ nonce: 'abc' }), context())).toMatchObject({
      ok: false,
      reason: 'malformed claim: nonce needs expires: a nonce is remembered until the document expires',
    });
  });

  it('verifies a document that arrives as a JSON string', () => {
    expect(verifyDocument(JSON.stringify(signed()), context({ required: true }))).toMatchObject({ ok: true, signed: true });
  });
});

describe('readClaims', () => {
  it('bounds nonce and devices', () => {
    expect(readClaims({ expires: '2026-12-06T10:00:00Z', nonce: 'x'.repeat(129) })).toMatchObject({ ok: false });
    expect(readClaims({ expires: '2026-12-06T10:00:00Z', nonce: 'new\nline' })).toMatchObject({
      ok: false,
      problem: 'nonce must be 1 to 128 printable characters, got "new\\nline"',
    });
    expect(readClaims({ expires: '2026-12-06T10:00:00Z', nonce: '' })).toMatchObject({ ok: false });
    expect(readClaims({ expires: '2026-12-06T10:00:00Z', nonce: 'with space, é and 😀' })).toMatchObject({ ok: true });
    expect(readClaims({ expires: '2026-12-06T10:00:00Z', nonce: '😀'.repeat(128) })).toMatchObject({ ok: true });
    expect(readClaims({ expires: '2026-12-06T10:00:00Z', nonce: 'x'.repeat(128) })).toMatchObject({ ok: true });
    expect(readClaims({ devices: [] })).toMatchObject({ ok: false });
    expect(readClaims({ devices: [1] })).toMatchObject({ ok: false });
  });
});

describe('parseRfc3339', () => {
  it('takes offsets and fractions, refuses what is not a real time', () => {
    expect(parseRfc3339('2026-12-06T10:00:00Z')).toBe(NOW);
    expect(parseRfc3339('2026-12-06t12:00:00.000000+02:00')).toBe(NOW);
    for (const bad of ['2026-12-06', '2026-02-30T00:00:00Z', '2026-12-06T10:00:00', '2026-13-01T00:00:00Z', '2026-12-06T24:00:00Z']) {
      expect(parseRfc3339(bad)).toBeNull();
    }
  });
});

describe('canonicalize bounds', () => {
  const limits = { maxDepth: 32, maxChars: 1000 };
  it('refuses what is nested too deep or too long, lone surrogates and non-finite numbers', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 40; i += 1) deep = [deep];
    expect(canonicalize(deep, limits)).toEqual({ ok: false, problem: 'it nests objects and arrays more than 32 levels deep' });
    expect(canonicalize('x'.repeat(2000), limits)).toEqual({ ok: false, problem: 'its canonical form is longer than 1000 characters' });
    expect(canonicalize({ a: '\ud800' }, limits)).toMatchObject({ ok: false, problem: expect.stringContaining('lone UTF-16 surrogate') });
    expect(canonicalize([Number.NaN], limits)).toMatchObject({ ok: false });
    expect(canonicalize({ b: -0, a: [1e21, 1e-7, 'é\u2028'] }, limits)).toEqual({ ok: true, text: '{"a":[1e+21,1e-7,"é\u2028"],"b":0}' });
  });
});
