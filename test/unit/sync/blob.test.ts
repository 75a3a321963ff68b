import assert from 'node:assert/strict';
import { BlobError, LIMITS, pruneTombstones, SessionEntry, TOMBSTONE_TTL_MS, validateBlob } from '../../../src/sync/blob';
import { newSessionId } from '../../../src/common/sessionId';

const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);
const HOUR = 60 * 60 * 1000;

function session(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: newSessionId(),
    hostLabel: 'build-1',
    user: 'dev',
    hostName: 'build-1.example.com',
    port: 22,
    multiplexer: 'tmux',
    cwd: '/home/dev/project',
    startedAt: NOW - HOUR,
    title: 'vim',
    ...overrides,
  };
}

function blob(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    format: 1,
    slotId: newSessionId(),
    deviceName: 'laptop',
    seq: 3,
    writtenAt: NOW - 1000,
    sessions: [session()],
    tombstones: [{ id: newSessionId(), killedAt: NOW - HOUR }],
    ...overrides,
  };
}

/** Validates a blob holding one good session and `entry`; returns the sessions kept. */
function keptWith(entry: unknown): readonly SessionEntry[] {
  const good = session();
  const result = validateBlob(blob({ sessions: [good, entry] }), { now: NOW });
  assert.equal(result.blob.sessions[0]!.id, good.id, 'the good neighbour survives');
  return result.blob.sessions.slice(1);
}

describe('blob validator', () => {
  it('accepts a well-formed blob and rebuilds it field by field', () => {
    const input = blob();
    const { blob: out, dropped } = validateBlob(JSON.parse(JSON.stringify(input)), { now: NOW, expectedSlotId: input.slotId as string });
    assert.equal(dropped, 0);
    assert.deepEqual(out, input);
  });

  it('keeps shell metacharacters in cwd and titles as data', () => {
    const cwd = `/srv/it's; rm -rf ~ && $(curl x|sh) \`id\` >"q" *?[]{}!#`;
    const title = `$(reboot); echo 'pwn' | tee /etc/x & \\ ""`;
    const [kept] = keptWith(session({ cwd, title }));
    assert.equal(kept?.cwd, cwd);
    assert.equal(kept?.title, title);
  });

  it('strips ANSI escapes and control characters from display strings', () => {
    const [kept] = keptWith(session({ title: '\u001b[31mred\u001b[0m\u001b]0;owned\u0007 tab\r\n\u202e', hostLabel: 'host\u0000-\u009b2Jx' }));
    assert.equal(kept?.title, 'red tab');
    assert.equal(kept?.hostLabel, 'host-x');
    const { blob: out } = validateBlob(blob({ deviceName: '\u001b[2Jlap\u0007top' }), { now: NOW });
    assert.equal(out.deviceName, 'laptop');
  });

  const hostile: Array<[string, unknown]> = [
    ['null entry', null],
    ['a string', 'session'],
    ['an array', [1, 2]],
    ['bad ID (uppercase)', session({ id: 'A'.repeat(26) })],
    ['bad ID (path)', session({ id: '../../etc/passwd' })],
    ['bad ID (short)', session({ id: 'abc' })],
    ['bad ID (number)', session({ id: 12345 })],
    ['ID with a trailing newline', session({ id: `${newSessionId()}\n` })],
    ['missing hostName', session({ hostName: undefined })],
    ['hostName as an ssh option', session({ hostName: '-oProxyCommand=touch /tmp/pwn' })],
    ['hostName with a space', session({ hostName: 'a b' })],
    ['user as an ssh option', session({ user: '-oProxyCommand=x' })],
    ['user with shell syntax', session({ user: 'root;id' })],
    ['huge hostName', session({ hostName: 'a'.repeat(LIMITS.hostName + 1) })],
    ['huge cwd', session({ cwd: '/'.repeat(LIMITS.cwd + 1) })],
    ['megabyte title', session({ title: 'x'.repeat(1024 * 1024) })],
    ['cwd with a newline', session({ cwd: '/tmp\nrm -rf ~' })],
    ['cwd with an escape', session({ cwd: '/tmp/\u001b[2J' })],
    ['empty cwd', session({ cwd: '' })],
    ['port 0', session({ port: 0 })],
    ['port 65536', session({ port: 65536 })],
    ['port as a string', session({ port: '22' })],
    ['port fractional', session({ port: 22.5 })],
    ['port NaN-like', session({ port: null })],
    ['multiplexer zellij', session({ multiplexer: 'zellij' })],
    ['multiplexer as an object', session({ multiplexer: { toString: 'tmux' } })],
    ['startedAt as ISO string', session({ startedAt: new Date(NOW).toISOString() })],
    ['startedAt far in the future', session({ startedAt: NOW + 365 * 24 * HOUR })],
    ['startedAt in 1970', session({ startedAt: 0 })],
    ['startedAt negative', session({ startedAt: -5 })],
    ['title as a number', session({ title: 42 })],
    ['title only escapes', session({ title: '\u001b[2J\u001b[H' })],
    ['hostLabel empty', session({ hostLabel: '   ' })],
  ];
  for (const [name, entry] of hostile) {
    it(`drops a session entry: ${name}`, () => {
      assert.deepEqual(keptWith(entry), []);
    });
  }

  it('ignores prototype-pollution keys and never pollutes Object.prototype', () => {
    const id = newSessionId();
    const text = `{"format":1,"slotId":"${newSessionId()}","deviceName":"d","seq":1,"writtenAt":${NOW},"__proto__":{"polluted":true},` +
      `"constructor":{"prototype":{"polluted":true}},"sessions":[{"__proto__":{"port":22,"multiplexer":"tmux"},"id":"${id}","hostLabel":"h","user":"u",` +
      `"hostName":"h","cwd":"/","startedAt":${NOW}}],"tombstones":[]}`;
    const { blob: out, dropped } = validateBlob(JSON.parse(text), { now: NOW });
    assert.equal(dropped, 1, 'a session whose port only exists through __proto__ is dropped');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(out, '__proto__'), false);
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
  });

  it('does not take a missing field from a polluted Object.prototype', () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.port = 22;
    try {
      assert.deepEqual(keptWith(session({ port: undefined })), []);
    } finally {
      delete proto.port;
    }
  });

  it('drops duplicate sessions and caps the list', () => {
    const one = session();
    const many = Array.from({ length: LIMITS.sessions + 10 }, () => session());
    const { blob: out, dropped } = validateBlob(blob({ sessions: [one, one, ...many] }), { now: NOW });
    assert.equal(out.sessions.length, LIMITS.sessions);
    assert.equal(dropped, 12);
  });

  it('drops bad tombstones and expires old ones', () => {
    const fresh = { id: newSessionId(), killedAt: NOW - HOUR };
    const { blob: out, dropped } = validateBlob(blob({
      tombstones: [fresh, { id: 'nope', killedAt: NOW }, { id: newSessionId(), killedAt: 'yesterday' }, { id: newSessionId(), killedAt: NOW - TOMBSTONE_TTL_MS - 1 }, null],
    }), { now: NOW });
    assert.deepEqual(out.tombstones, [fresh]);
    assert.equal(dropped, 3);
    assert.deepEqual(pruneTombstones([fresh, { id: newSessionId(), killedAt: NOW - TOMBSTONE_TTL_MS - 1 }], NOW), [fresh]);
  });

  const badEnvelopes: Array<[string, unknown, BlobError['reason']]> = [
    ['not an object', 'blob', 'not-object'],
    ['an array', [], 'not-object'],
    ['null', null, 'not-object'],
    ['unknown format', blob({ format: 2 }), 'format'],
    ['format as a string', blob({ format: '1' }), 'format'],
    ['bad slot', blob({ slotId: 'x' }), 'slot'],
    ['negative seq', blob({ seq: -1 }), 'seq'],
    ['seq as a string', blob({ seq: '9' }), 'seq'],
    ['NaN writtenAt', blob({ writtenAt: Number.NaN }), 'written-at'],
    ['future writtenAt', blob({ writtenAt: NOW + 30 * 24 * HOUR }), 'written-at'],
    ['deviceName missing', blob({ deviceName: undefined }), 'device-name'],
    ['deviceName huge', blob({ deviceName: 'd'.repeat(10_000) }), 'device-name'],
    ['sessions not a list', blob({ sessions: { 0: session() } }), 'sessions'],
    ['tombstones not a list', blob({ tombstones: 'none' }), 'tombstones'],
  ];
  for (const [name, input, reason] of badEnvelopes) {
    it(`refuses the whole blob when an envelope field is bad: ${name}`, () => {
      assert.throws(() => validateBlob(input, { now: NOW }), (error: unknown) => BlobError.is(error) && error.reason === reason);
    });
  }

  it('refuses a blob whose inner slot differs from where it was stored', () => {
    assert.throws(() => validateBlob(blob(), { now: NOW, expectedSlotId: newSessionId() }), (error: unknown) => BlobError.is(error) && error.reason === 'slot');
  });
});
