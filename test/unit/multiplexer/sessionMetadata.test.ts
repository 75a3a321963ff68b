import assert from 'node:assert/strict';
import { parseKillOutput } from '../../../src/multiplexer/multiplexer';
import { parseInventory } from '../../../src/multiplexer/hostInventory';
import { newSessionId } from '../../../src/common/sessionId';
import { META_LIMITS, cleanMetaText, decodeMetaValue, encodeMetaValue, metadataFromFields, parseClientDevices } from '../../../src/multiplexer/sessionMetadata';

const HOSTILE = [
  `a'b"c $(touch X) \`touch X\`; rm -rf ~ | & > <`,
  '#(touch X)#{session_name}##[fg=red]',
  'line\nbreak\r\u001b[2J\u009b31m\u202e',
  'é 漢字 🙂',
  '%41%zz%',
];

describe('session metadata values', () => {
  it('encodes to a word of [A-Za-z0-9._~%] that round-trips to the cleaned value', () => {
    for (const value of HOSTILE) {
      const encoded = encodeMetaValue(value, META_LIMITS.title)!;
      assert.match(encoded, /^[A-Za-z0-9._~%]+$/, value);
      assert.ok(!encoded.includes('#'));
      assert.equal(decodeMetaValue(encoded, META_LIMITS.title), cleanMetaText(value, META_LIMITS.title));
    }
  });

  it('cleans control characters and bounds the length by code points', () => {
    assert.equal(cleanMetaText('line\nbreak\r\u001b[2J', 64), 'line break [2J');
    assert.equal(cleanMetaText('🙂'.repeat(200), 100), '🙂'.repeat(100));
    assert.equal(cleanMetaText('   \n\t ', 64), undefined);
    assert.equal(encodeMetaValue(undefined, 64), undefined);
    assert.equal(encodeMetaValue('x'.repeat(10_000), 64)!.length, 64);
  });

  it('drops stored values that are not our encoding', () => {
    for (const raw of ['#(touch X)', 'has space', '%zz', '%E0%A4', '', 'x'.repeat(5000)]) assert.equal(decodeMetaValue(raw, 64), undefined, raw);
  });

  it('reads fields, ignoring junk times and values', () => {
    assert.deepEqual(metadataFromFields(new Map([['device', 'lap%20top'], ['created_at', '1700000000'], ['detached_at', '-5'], ['title', '#bad']])), { device: 'lap top', createdAt: 1_700_000_000_000 });
  });

  it('names client devices; unknown clients are counted, not named', () => {
    assert.deepEqual(parseClientDevices(['client =laptop', 'client =', 'client =%23x', 'client =laptop', 'junk']), { devices: ['laptop', '#x'], unknown: 1 });
  });
});

describe('a refused kill names the attached devices', () => {
  it('parses client lines after in-use and leaves one client of our own device out', () => {
    const output = 'in-use 3\nclient =laptop\nclient =desk%20top\nclient =\n';
    assert.deepEqual(parseKillOutput(output, 's'), { killed: false, reason: 'in-use', clients: 3, attachedDevices: ['laptop', 'desk top'] });
    assert.deepEqual(parseKillOutput(output, 's', 'laptop'), { killed: false, reason: 'in-use', clients: 3, attachedDevices: ['desk top'] });
    assert.deepEqual(parseKillOutput('in-use 2\nclient =laptop\nclient =laptop\n', 's', 'laptop'), { killed: false, reason: 'in-use', clients: 2, attachedDevices: ['laptop'] });
    assert.deepEqual(parseKillOutput('in-use 1\nclient =\n', 's'), { killed: false, reason: 'in-use', clients: 1 });
    assert.deepEqual(parseKillOutput('s\nclient =laptop\n', 's'), { killed: true });
  });
});

describe('inventory with metadata', () => {
  it('reads tmux options and clients, and screen metadata files', () => {
    const [a, b, c] = [newSessionId(), newSessionId(), newSessionId()];
    const output = [
      '== tmux',
      `tether_${a} 1 1700000000 =laptop =my%20title =1700000001 = =`,
      `tether_${b} 0 1700000000 = = = =desk =1700000500`,
      `client tether_${a} =laptop`,
      `client tether_${a} =`,
      '== screen',
      `meta tether_${c} device=phone`,
      `meta tether_${c} created_at=1700000100`,
      `meta tether_${c} title=#bad`,
      `tether_${c} Detached`,
    ].join('\n');
    assert.deepEqual(parseInventory(output), [
      { id: a, multiplexer: 'tmux', attachedClients: 1, createdAt: 1_700_000_000_000, meta: { device: 'laptop', title: 'my title', createdAt: 1_700_000_001_000 }, clientDevices: ['laptop'] },
      { id: b, multiplexer: 'tmux', attachedClients: 0, createdAt: 1_700_000_000_000, meta: { detachedBy: 'desk', detachedAt: 1_700_000_500_000 } },
      { id: c, multiplexer: 'screen', attachedClients: 0, createdAt: 1_700_000_100_000, meta: { device: 'phone', createdAt: 1_700_000_100_000 } },
    ]);
  });
});
