import assert from 'node:assert/strict';
import { deriveSyncKeys, formatSyncKey, generateSyncKey, parseSyncKey, SyncKeyError } from '../../../src/sync/syncKey';

function expectKeyError(text: string, reason: SyncKeyError['reason']): void {
  assert.throws(() => parseSyncKey(text), (error: unknown) => SyncKeyError.is(error) && error.reason === reason);
}

describe('sync key', () => {
  it('round-trips through its display form', () => {
    for (let i = 0; i < 50; i++) {
      const key = generateSyncKey();
      const text = formatSyncKey(key);
      assert.match(text, /^tether1(-[a-z2-7]{1,6})+$/);
      assert.deepEqual(parseSyncKey(text), key);
    }
  });

  it('tolerates spaces, dashes, line breaks and case', () => {
    const key = generateSyncKey();
    const text = formatSyncKey(key);
    const messy = `  ${text.toUpperCase().replace(/-/g, ' ').replace(/(.{10})/g, '$1\n')}  `;
    assert.deepEqual(parseSyncKey(messy), key);
    assert.deepEqual(parseSyncKey(text.replace(/-/g, '')), key);
  });

  it('catches every single-character substitution with a checksum error', () => {
    const text = formatSyncKey(generateSyncKey());
    const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
    let checked = 0;
    for (let i = 'tether1-'.length; i < text.length; i++) {
      if (text[i] === '-') continue;
      const replacement = alphabet[(alphabet.indexOf(text[i]!) + 7) % 32]!;
      const typo = text.slice(0, i) + replacement + text.slice(i + 1);
      expectKeyError(typo, 'checksum');
      checked++;
    }
    assert.equal(checked, 58);
  });

  it('catches swapped neighbours, a missing character, foreign characters and a wrong prefix', () => {
    const text = formatSyncKey(generateSyncKey());
    const i = text.length - 10;
    const swapped = text.slice(0, i) + text[i + 1] + text[i] + text.slice(i + 2);
    if (swapped !== text) expectKeyError(swapped, 'checksum');
    expectKeyError(text.slice(0, -1), 'length');
    expectKeyError(`${text}a`, 'length');
    expectKeyError(text.replace(/-([a-z2-7])/, '-0'), 'characters');
    expectKeyError(text.replace('tether1', 'tether2'), 'prefix');
    expectKeyError('', 'prefix');
  });

  it('derives distinct encryption key and token, stable for one key', () => {
    const key = generateSyncKey();
    const a = deriveSyncKeys(key);
    const b = deriveSyncKeys(new Uint8Array(key));
    assert.deepEqual(a.encryptionKey, b.encryptionKey);
    assert.equal(a.token, b.token);
    assert.equal(a.encryptionKey.length, 32);
    assert.match(a.token, /^[A-Za-z0-9_-]{43}$/);
    assert.notDeepEqual(Buffer.from(a.token, 'base64url'), Buffer.from(a.encryptionKey));
    assert.notDeepEqual(a.encryptionKey, key);
    assert.notEqual(deriveSyncKeys(generateSyncKey()).token, a.token);
  });
});
