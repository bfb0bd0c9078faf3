// The agent's canonicalization and Ed25519 verification against vectors made
// by an independent implementation (test/fixtures/signing/make-vectors.py:
// Python's json and `openssl pkeyutl -sign -rawin`), read from the text a
// JSONB server returns: members reordered, whitespace added, numbers respelled.
import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../../src/security/jcs.js';
import { signedBytes, verifyDocument, readSignedParts } from '../../../src/security/signed-document.js';
import { keyIdOf } from '../../../src/security/trusted-keys.js';

interface Vector {
  name: string;
  source: string;
  canonical: string;
  server_text: string;
  signature: { alg: string; keyId: string; value: string };
}
const FIXTURES = 'test/fixtures/signing';
const file = JSON.parse(readFileSync(`${FIXTURES}/vectors.json`, 'utf8')) as { keyId: string; otherKeyId: string; vectors: Vector[] };
const publicKey = createPublicKey(readFileSync(`${FIXTURES}/test-key.pem`));
const otherKey = createPublicKey(readFileSync(`${FIXTURES}/other-key.pem`));
const LIMITS = { maxDepth: 32, maxChars: 1 << 21 };

const context = (keys: Map<string, { key: typeof publicKey }>) => ({
  keys,
  required: true,
  deviceUuid: '0b6f4a52-3c1d-4f6e-9a0b-7d2c5e8f1a34',
  now: Date.parse('2026-12-06T00:00:00Z'),
  keysDir: '/etc/cloudjobs/trusted-keys.d',
});

describe('signed-document vectors from make-vectors.py', () => {
  it('computes the key id OpenSSL and hashlib computed', () => {
    expect(keyIdOf(publicKey)).toBe(file.keyId);
    expect(keyIdOf(otherKey)).toBe(file.otherKeyId);
  });

  it('has the cases the issue names', () => {
    expect(file.vectors.map((v) => v.name)).toEqual([
      'aws v1.0 document',
      'iotistic template, flattened steps',
      'old operation schema',
      'unicode names and strings',
      'numbers as the server returns them',
      'claims: expires, devices, nonce',
    ]);
  });

  for (const vector of file.vectors) {
    it(`${vector.name}: the author's text and the server's text canonicalize to the same bytes`, () => {
      expect(canonicalize(JSON.parse(vector.source), LIMITS)).toEqual({ ok: true, text: vector.canonical });
      const served = readSignedParts(JSON.parse(vector.server_text));
      expect(served.kind).toBe('signed');
      if (served.kind !== 'signed') return;
      const bytes = signedBytes(served.body);
      expect(bytes.ok && bytes.bytes.toString('utf8')).toBe(vector.canonical);
      // the server reordered members and respelled numbers: the text differs, the bytes do not
      expect(vector.server_text).not.toContain(vector.canonical);
    });

    it(`${vector.name}: OpenSSL's signature verifies on the server's text, as an object and as a JSON string`, () => {
      const keys = new Map([[file.keyId, { key: publicKey }]]);
      expect(verifyDocument(JSON.parse(vector.server_text), context(keys))).toMatchObject({ ok: true, signed: true, keyId: file.keyId });
      expect(verifyDocument(vector.server_text, context(keys))).toMatchObject({ ok: true, signed: true });
    });

    it(`${vector.name}: one changed character or another key fails`, () => {
      const keys = new Map([[file.keyId, { key: otherKey }]]);
      expect(verifyDocument(JSON.parse(vector.server_text), context(keys))).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/^signature does not verify with key /),
      });
      const own = new Map([[file.keyId, { key: publicKey }]]);
      const tampered = JSON.parse(vector.server_text) as Record<string, unknown>;
      tampered.version = tampered.version === '1.0' ? '1.1' : '1.0';
      expect(verifyDocument(tampered, context(own))).toMatchObject({ ok: false, reason: expect.stringMatching(/^signature does not verify/) });
    });
  }
});
