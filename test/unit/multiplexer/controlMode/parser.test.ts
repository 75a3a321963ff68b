import { strict as assert } from 'node:assert';
import { ControlEvent, ControlParser, decodeOctal } from '../../../../src/multiplexer/controlMode/parser';

/** Merges adjacent passthrough events, so that streams split differently compare equal. */
function normalise(events: ControlEvent[]): unknown[] {
  const out: unknown[] = [];
  for (const event of events) {
    const last = out[out.length - 1] as { type: string; data: Buffer } | undefined;
    if (event.type === 'passthrough' && last?.type === 'passthrough') {
      last.data = Buffer.concat([last.data, event.data]);
      continue;
    }
    out.push(event.type === 'passthrough' || event.type === 'output' ? { ...event, data: Buffer.from(event.data) } : event);
  }
  return out.map((event) => {
    const e = event as { data?: Buffer };
    return e.data ? { ...e, data: e.data.toString('hex') } : e;
  });
}

function parseAll(flavour: '-C' | '-CC', chunks: Buffer[], echoes: string[] = []): ControlEvent[] {
  const parser = new ControlParser(flavour);
  for (const echo of echoes) parser.expectEcho(echo);
  return chunks.flatMap((chunk) => parser.push(chunk));
}

const crlf = (lines: string[]): string => lines.map((line) => `${line}\r\n`).join('');

// A -CC stream as tmux 3.3a writes it over a pty: banner, DCS, the attach block, notifications,
// a reply block holding guard-like lines, output with octal escapes and raw UTF-8, %exit, ST.
const CC_STREAM = Buffer.concat([
  Buffer.from('Welcome to host\r\nlast login: \x1bP10 not the marker\r\n', 'latin1'),
  Buffer.from('\x1bP1000p', 'latin1'),
  Buffer.from(
    crlf([
      '%begin 1795707937 265 0',
      '%end 1795707937 265 0',
      '%session-changed $0 tether_x',
      '%output %0 hello\\015\\012\\033[1mbold\\033[0m \\134 back',
      '%begin 1795707938 270 1',
      '%end 1795707938 271 1',
      '%output %0 not output',
      '%begin 1795707938 272 1',
      '%error 1795707938 270 0',
      '',
      'tail line',
      '%end 1795707938 270 1',
      '%layout-change @0 fedd,50x9,0,0,0 fedd,50x9,0,0,0 *',
      '%extended-output %12 37 : x\\033y',
      '%pause %12',
      '%continue %12',
      '%window-add @1',
      '%sessions-changed',
    ]),
  ),
  Buffer.from('%output %3 caf\xc3', 'latin1'),
  Buffer.from('\r\n%output %3 \xa9 \xe4\xbd\xa0\r\n', 'latin1'),
  Buffer.from('%exit detached\r\n\x1b\\after\r\n', 'latin1'),
]);

describe('control mode parser', () => {
  it('parses a -CC stream: banner passed through, blocks, notifications, output, exit', () => {
    const events = normalise(parseAll('-CC', [CC_STREAM]));
    assert.deepEqual(events, normalise([
      { type: 'passthrough', data: Buffer.from('Welcome to host\r\nlast login: \x1bP10 not the marker\r\n', 'latin1') },
      { type: 'start' },
      { type: 'reply', time: 1795707937, number: 265, flags: 0, error: false, lines: [] },
      { type: 'notification', name: 'session-changed', args: '$0 tether_x' },
      { type: 'output', pane: 0, data: Buffer.from('hello\r\n\x1b[1mbold\x1b[0m \\ back', 'latin1') },
      {
        type: 'reply', time: 1795707938, number: 270, flags: 1, error: false,
        lines: ['%end 1795707938 271 1', '%output %0 not output', '%begin 1795707938 272 1', '%error 1795707938 270 0', '', 'tail line'],
      },
      { type: 'notification', name: 'layout-change', args: '@0 fedd,50x9,0,0,0 fedd,50x9,0,0,0 *' },
      { type: 'output', pane: 12, data: Buffer.from('x\x1by', 'latin1'), age: 37 },
      { type: 'pause', pane: 12 },
      { type: 'continue', pane: 12 },
      { type: 'notification', name: 'window-add', args: '@1' },
      { type: 'notification', name: 'sessions-changed', args: '' },
      { type: 'output', pane: 3, data: Buffer.from('caf\xc3', 'latin1') },
      { type: 'output', pane: 3, data: Buffer.from('\xa9 \xe4\xbd\xa0', 'latin1') },
      { type: 'exit', reason: 'detached' },
      { type: 'passthrough', data: Buffer.from('after\r\n') },
    ]));
  });

  it('gives the same events for every split position, and byte by byte', () => {
    const whole = normalise(parseAll('-CC', [CC_STREAM]));
    for (let at = 0; at <= CC_STREAM.length; at++) {
      const split = normalise(parseAll('-CC', [CC_STREAM.subarray(0, at), CC_STREAM.subarray(at)]));
      assert.deepEqual(split, whole, `split at ${at}`);
    }
    for (let a = 0; a < CC_STREAM.length; a += 7) {
      for (let b = a; b <= CC_STREAM.length; b += 13) {
        const split = normalise(parseAll('-CC', [CC_STREAM.subarray(0, a), CC_STREAM.subarray(a, b), CC_STREAM.subarray(b)]));
        assert.deepEqual(split, whole, `split at ${a} and ${b}`);
      }
    }
    const bytes = [...CC_STREAM].map((byte) => Buffer.from([byte]));
    assert.deepEqual(normalise(parseAll('-CC', bytes)), whole);
  });

  it('decodes UTF-8 split across two %output notifications once joined', () => {
    const events = parseAll('-CC', [CC_STREAM]).filter((e): e is Extract<ControlEvent, { type: 'output' }> => e.type === 'output' && e.pane === 3);
    assert.equal(Buffer.concat(events.map((e) => e.data)).toString('utf8'), 'café 你');
  });

  it('never parses a banner before the DCS marker, even one that looks like protocol', () => {
    const banner = '%exit\r\n%begin 1 2 1\r\n%output %0 evil\r\n\x1bP100';
    const events = parseAll('-CC', [Buffer.from(banner, 'latin1')]);
    assert.deepEqual(normalise(events), normalise([{ type: 'passthrough', data: Buffer.from('%exit\r\n%begin 1 2 1\r\n%output %0 evil\r\n', 'latin1') }]));
    // The held-back partial marker is released when it turns out not to be the marker.
    const parser = new ControlParser('-CC');
    const first = parser.push(Buffer.from('abc\x1bP10', 'latin1'));
    const second = parser.push(Buffer.from('x', 'latin1'));
    assert.equal(Buffer.concat([...first, ...second].map((e) => (e as { data: Buffer }).data)).toString('latin1'), 'abc\x1bP10x');
  });

  it('drops the pty echo of our own commands in -C mode, inside and outside blocks', () => {
    const stream = Buffer.from(
      crlf([
        'banner line',
        '%begin 10 1 0',
        '%end 10 1 0',
        '%session-changed $1 tether_y',
        'display -p x',
        '%begin 11 2 1',
        'x',
        'send-keys -H -t %1 61',
        '%end 11 2 1',
        '%output %1 \\141',
        'display -p x',
        '%exit',
      ]),
    );
    const events = normalise(parseAll('-C', [stream], ['display -p x', 'send-keys -H -t %1 61']));
    assert.deepEqual(events, normalise([
      { type: 'passthrough', data: Buffer.from('banner line\n') },
      { type: 'reply', time: 10, number: 1, flags: 0, error: false, lines: [] },
      { type: 'notification', name: 'session-changed', args: '$1 tether_y' },
      { type: 'reply', time: 11, number: 2, flags: 1, error: false, lines: ['x'] },
      { type: 'output', pane: 1, data: Buffer.from('a') },
      // Not expected any more: the second identical line is not an echo of ours.
      { type: 'passthrough', data: Buffer.from('display -p x\n') },
      { type: 'exit', reason: undefined },
    ]));
    for (let at = 0; at <= stream.length; at++) {
      assert.deepEqual(normalise(parseAll('-C', [stream.subarray(0, at), stream.subarray(at)], ['display -p x', 'send-keys -H -t %1 61'])), events, `split at ${at}`);
    }
  });

  it('reports %error blocks and keeps their lines', () => {
    const events = parseAll('-C', [Buffer.from('%begin 5 9 1\nparse error: unknown command: x\n%error 5 9 1\n')]);
    assert.deepEqual(events, [{ type: 'reply', time: 5, number: 9, flags: 1, error: true, lines: ['parse error: unknown command: x'] }]);
  });

  it('decodes octal escapes of every byte value', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const encoded = Buffer.concat([...all].map((byte) => (byte < 0x20 || byte === 0x5c ? Buffer.from(`\\${byte.toString(8).padStart(3, '0')}`) : Buffer.from([byte]))));
    assert.deepEqual(decodeOctal(encoded), all);
    const events = parseAll('-C', [Buffer.concat([Buffer.from('%output %7 '), encoded, Buffer.from('\n')])]);
    assert.deepEqual(events, [{ type: 'output', pane: 7, data: all }]);
    assert.deepEqual(decodeOctal(Buffer.from('a\\9b\\12')), Buffer.from('a\\9b\\12'));
  });

  it('handles %output with empty data and ignores malformed output lines', () => {
    const events = parseAll('-C', [Buffer.from('%output %4 \n%output x\n%output %4\n')]);
    assert.deepEqual(events, [
      { type: 'output', pane: 4, data: Buffer.alloc(0) },
      { type: 'output', pane: 4, data: Buffer.alloc(0) },
    ]);
  });
});
