import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { AttachPreamble, AttachStatusError, AttachStatusReader, attachChannelScript, newAttachMarker } from '../../../src/multiplexer/attachStatus';
import { newSessionId } from '../../../src/common/sessionId';

const M = '__tether_0123456789abcdef__';

/** Feeds `text` in chunks of `size` bytes; returns the preamble once the reader has one. */
function feed(text: string | Buffer, size: number, marker = M): { preamble?: AttachPreamble; at: number } {
  const reader = new AttachStatusReader(marker);
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += size) {
    const preamble = reader.push(bytes.subarray(i, i + size));
    if (preamble) return { preamble, at: i };
  }
  return { at: bytes.length };
}

describe('attach status line (attachStatus.ts)', () => {
  for (const size of [1, 2, 7, 1000]) {
    it(`parses attached and keeps the rest for the terminal, in chunks of ${size}`, () => {
      const { preamble } = feed(`${M} attached\r\n\x1b[H\x1b[2Jprompt$ `, size);
      assert.deepEqual(preamble?.status, { state: 'attached' });
      // Whatever else arrived in the same chunk is the client's output, byte for byte.
      const rest = preamble!.rest.toString('utf8');
      assert.ok('\x1b[H\x1b[2Jprompt$ '.startsWith(rest), JSON.stringify(rest));
    });
  }

  it('waits for the newline: a status split anywhere is not read early', () => {
    const reader = new AttachStatusReader(M);
    assert.equal(reader.push(Buffer.from(`${M} exi`)), undefined);
    assert.equal(reader.push(Buffer.from('ted 1')), undefined);
    assert.deepEqual(reader.push(Buffer.from('2\r\n'))?.status, { state: 'exited', exitCode: 12 });
  });

  it('reads gone, exited, unsupported, create-failed and the agent result', () => {
    assert.deepEqual(feed(`${M} gone\n`, 100).preamble?.status, { state: 'gone' });
    assert.deepEqual(feed(`${M} exited 3\r\n`, 100).preamble?.status, { state: 'exited', exitCode: 3 });
    assert.deepEqual(feed(`${M} exited 999\n`, 100).preamble?.status, { state: 'exited', exitCode: 255 });
    assert.deepEqual(feed(`${M} unsupported\n`, 100).preamble?.status, { state: 'unsupported' });
    assert.deepEqual(feed(`${M} create-failed no space left \n`, 100).preamble?.status, { state: 'create-failed', detail: 'no space left' });
    assert.deepEqual(feed(`${M} attached agent=no-agent\n`, 100).preamble?.status, { state: 'attached', agent: 'no-agent' });
  });

  it('skips a banner and rc-file noise, even noise that says our words without the marker', () => {
    const { preamble } = feed(`Welcome!\r\nattached\r\n__tether_other__ gone\r\nx ${M} gone\n${M} attached\r\nhi`, 3);
    assert.deepEqual(preamble?.status, { state: 'attached' });
    assert.match(preamble!.noise, /Welcome!\nattached\n__tether_other__ gone\nx /);
    assert.ok('hi'.startsWith(preamble!.rest.toString()));
  });

  it('separates the replayed history from the client output that follows it', () => {
    for (const size of [1, 5, 4096]) {
      const { preamble } = feed(`${M} attached replay agent=linked\r\nline 1\r\nline 2\r\n\r\n${M} replay-end\r\n\x1b[Hdrawn`, size);
      assert.deepEqual(preamble?.status, { state: 'attached', agent: 'linked' });
      assert.equal(preamble!.replay, 'line 1\r\nline 2\r\n\r\n');
      assert.ok('\x1b[Hdrawn'.startsWith(preamble!.rest.toString()));
    }
  });

  it('refuses a status line it does not know, and endless output without one', () => {
    assert.throws(() => feed(`${M} attached; rm -rf /\n`, 100), AttachStatusError);
    assert.throws(() => feed(`${M} exited -1\n`, 100), AttachStatusError);
    const reader = new AttachStatusReader(M, 1000);
    assert.throws(() => {
      for (let i = 0; i < 20; i++) reader.push(Buffer.from('garbage without a newline '.repeat(10)));
    }, AttachStatusError);
    assert.throws(() => new AttachStatusReader('short'));
  });

  it('is never fooled by invalid UTF-8 before the status', () => {
    const junk = Buffer.from([0xff, 0xfe, 0x0a, 0xc3]);
    const { preamble } = feed(Buffer.concat([junk, Buffer.from(`\n${M} gone\n`)]), 2);
    assert.deepEqual(preamble?.status, { state: 'gone' });
  });
});

describe('attach channel script (attachStatus.ts), run by sh', () => {
  const id = newSessionId();
  const run = (parts: Partial<Parameters<typeof attachChannelScript>[0]>, env: Record<string, string> = {}): string => {
    const marker = newAttachMarker();
    const script = attachChannelScript({ marker, id, binary: 'sh', status: 'echo alive', attach: 'echo client-runs', ...parts } as Parameters<typeof attachChannelScript>[0]);
    return execFileSync('sh', ['-c', script], { env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent-i16', ...env } }).toString().split(marker).join('M');
  };

  it('prints attached, then becomes the client', () => {
    assert.equal(run({}), 'M attached\nclient-runs\n');
  });

  it('reports gone and exited from the status script, and never runs the client', () => {
    assert.equal(run({ status: 'echo noise; echo gone' }), 'M gone\n');
    assert.equal(run({ status: 'echo "exited 7"' }), 'M exited 7\n');
    assert.equal(run({ status: 'echo what' }), 'M unsupported\n');
  });

  it('reports unsupported when the multiplexer is not installed', () => {
    assert.equal(run({ binary: 'tmux-not-installed-i16' as 'tmux' }), 'M unsupported\n');
  });

  it('creates first, and reports a failed create with its output on one line', () => {
    assert.equal(run({ create: 'echo created' }), 'M attached\nclient-runs\n');
    assert.equal(run({ create: 'echo "no\nspace" >&2; exit 1' }), 'M create-failed no space\n');
  });

  it('with goAhead, waits for one line from the client between the status and the client', () => {
    const marker = newAttachMarker();
    const script = attachChannelScript({ marker, id, binary: 'sh' as 'tmux', status: 'echo alive', attach: 'echo client-runs; cat', capture: 'echo h1', goAhead: true });
    const run_ = (input: string): string =>
      execFileSync('sh', ['-c', script], { input, env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent-i16' } }).toString().split(marker).join('M');
    // The go-ahead line is consumed; what the client types after it reaches the client.
    assert.equal(run_('\ntyped\n'), 'M attached replay\nh1\n\nM replay-end\nclient-runs\ntyped\n');
    // No go-ahead (the client went away): the client never starts.
    assert.equal(run_(''), 'M attached replay\nh1\n\nM replay-end\n');
  });

  it('carries the agent link result and the replay', () => {
    assert.equal(run({ agentLink: 'echo linked', capture: 'printf "h1\\nh2\\n"' }), 'M attached replay agent=linked\nh1\nh2\n\nM replay-end\nclient-runs\n');
    assert.equal(run({ agentLink: 'exit 1' }), 'M attached agent=failed\nclient-runs\n');
  });
});
