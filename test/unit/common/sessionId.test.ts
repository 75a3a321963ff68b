import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import {
  InvalidSessionIdError, SESSION_ID_PATTERN, assertSessionId, base32Encode, isValidSessionId, newSessionId, sessionName, shortId, shortSessionName,
} from '../../../src/common/sessionId';

/** An independent bit-by-bit base32 (RFC 4648, lowercase, no padding) to compare against. */
function referenceBase32(bytes: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const bits = Array.from(bytes, (b) => b.toString(2).padStart(8, '0')).join('');
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += alphabet[parseInt(bits.slice(i, i + 5).padEnd(5, '0'), 2)];
  return out;
}

/** Decodes lowercase unpadded base32 back to bytes (drops the final partial byte's pad bits). */
function decodeBase32(text: string): Buffer {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const bits = Array.from(text, (c) => alphabet.indexOf(c).toString(2).padStart(5, '0')).join('');
  const bytes: number[] = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

describe('sessionId', () => {
  describe('base32Encode', () => {
    it('matches the RFC 4648 section 10 test vectors, lowercase and unpadded', () => {
      const vectors: Array<[string, string]> = [
        ['', ''],
        ['f', 'my'],
        ['fo', 'mzxq'],
        ['foo', 'mzxw6'],
        ['foob', 'mzxw6yq'],
        ['fooba', 'mzxw6ytb'],
        ['foobar', 'mzxw6ytboi'],
      ];
      for (const [input, output] of vectors) assert.equal(base32Encode(Buffer.from(input, 'ascii')), output, input);
    });

    it('encodes edge bytes and long inputs like an independent implementation', () => {
      assert.equal(base32Encode(new Uint8Array([0])), 'aa');
      assert.equal(base32Encode(new Uint8Array([0xff])), '74');
      assert.equal(base32Encode(new Uint8Array(5).fill(0xff)), '77777777');
      assert.equal(base32Encode(new Uint8Array(5)), 'aaaaaaaa');
      for (let length = 0; length <= 70; length++) {
        const bytes = randomBytes(length);
        assert.equal(base32Encode(bytes), referenceBase32(bytes), bytes.toString('hex'));
      }
      // Long enough that an unmasked 32-bit accumulator would overflow many times over.
      const long = randomBytes(4096);
      assert.equal(base32Encode(long), referenceBase32(long));
    });

    it('round-trips through a decoder', () => {
      for (let i = 0; i < 50; i++) {
        const bytes = randomBytes(i);
        assert.ok(decodeBase32(base32Encode(bytes)).equals(bytes));
      }
    });
  });

  describe('newSessionId', () => {
    it('is 26 lowercase base32 characters encoding 16 bytes', () => {
      for (let i = 0; i < 200; i++) {
        const id = newSessionId();
        assert.match(id, /^[a-z2-7]{26}$/);
        assert.ok(isValidSessionId(id));
        assert.equal(decodeBase32(id).length, 16);
        // 128 bits in 26 characters: the last character carries 3 bits and 2 zero pad bits.
        assert.match(id[25], /^[aeimquy4]$/);
        assert.equal(base32Encode(decodeBase32(id)), id);
      }
    });

    it('does not repeat over many IDs and uses the whole alphabet', () => {
      const seen = new Set<string>();
      const characters = new Set<string>();
      for (let i = 0; i < 20_000; i++) {
        const id = newSessionId();
        seen.add(id);
        for (const c of id.slice(0, 25)) characters.add(c);
      }
      assert.equal(seen.size, 20_000);
      assert.equal(characters.size, 32);
    });
  });

  describe('validation', () => {
    const good = 'abcdefghijklmnopqrstuvwxyz';
    const bad: unknown[] = [
      '',
      good.slice(1),
      good + 'a',
      good.toUpperCase(),
      'Abcdefghijklmnopqrstuvwxyz',
      'abcdefghijklmnopqrstuvwxy0',
      'abcdefghijklmnopqrstuvwxy1',
      'abcdefghijklmnopqrstuvwxy8',
      'abcdefghijklmnopqrstuvwxy9',
      'abcdefghijklmnopqrstuvwxy=',
      'abcdefghijklmnopqrstuvwxy-',
      'abcdefghijklmnopqrstuvwxy_',
      'abcdefghijklmnopqrstuvwxy ',
      ' abcdefghijklmnopqrstuvwxyz',
      good + '\n',
      '\n' + good,
      good.slice(0, 13) + '\n' + good.slice(13),
      'abcdefghijklmnopqrstuvwxy\u0430', // Cyrillic a
      'abcdefghijklmnopqrstuvwxy;',
      `abcdefghijklmnopqrstuvwx$(`,
      `tether_${good}`,
      good + good,
      undefined,
      null,
      42,
      {},
      [good],
      { toString: () => good },
    ];

    it('accepts exactly 26 characters of a-z and 2-7', () => {
      assert.ok(isValidSessionId(good));
      assert.ok(isValidSessionId('22222222222222222222222222'));
      assert.ok(isValidSessionId('77777777777777777777777777'));
      assert.equal(assertSessionId(good), good);
      assert.ok(SESSION_ID_PATTERN.test(good));
    });

    it('rejects malformed IDs with InvalidSessionIdError', () => {
      for (const value of bad) {
        assert.equal(isValidSessionId(value), false, JSON.stringify(String(value)));
        assert.throws(() => assertSessionId(value), (error: unknown) => {
          assert.ok(InvalidSessionIdError.is(error));
          assert.ok(error instanceof Error);
          assert.equal(error.name, 'InvalidSessionIdError');
          assert.equal(error.value, value);
          return true;
        });
      }
    });

    it('keeps error messages short even for huge values', () => {
      try {
        assertSessionId('x'.repeat(100_000));
        assert.fail('should throw');
      } catch (error) {
        assert.ok(InvalidSessionIdError.is(error));
        assert.ok((error as Error).message.length < 300);
      }
      assert.equal(InvalidSessionIdError.is(new Error('x')), false);
    });
  });

  describe('sessionName and shortId', () => {
    it('names a session tether_<id> and only for a valid ID', () => {
      const id = newSessionId();
      assert.equal(sessionName(id), `tether_${id}`);
      assert.throws(() => sessionName('bad'), InvalidSessionIdError);
      assert.throws(() => sessionName(`${id}; rm -rf ~`), InvalidSessionIdError);
      assert.throws(() => sessionName(id.toUpperCase()), InvalidSessionIdError);
    });

    it('shortens an ID to its first six characters', () => {
      assert.equal(shortId('abcdefghijklmnopqrstuvwxyz'), 'abcdef');
    });

    it('shortens a session name for messages to tether_ and the short ID', () => {
      const id = newSessionId();
      assert.equal(shortSessionName(id), `tether_${id.slice(0, 6)}`);
      assert.ok(sessionName(id).startsWith(shortSessionName(id)));
    });
  });
});
