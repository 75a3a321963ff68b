import * as assert from 'node:assert/strict';
import { formatComment, formatEvent, formatRetry, parseLastEventId, SseFramingError } from '../../../src/server/sse';

describe('server/sse framing', () => {
  it('frames an event with id, name and data', () => {
    assert.equal(formatEvent({ id: 7, event: 'blob', data: '{"a":1}' }), 'id: 7\nevent: blob\ndata: {"a":1}\n\n');
  });

  it('splits multi-line data so a payload cannot end the event or inject fields', () => {
    const frame = formatEvent({ event: 'x', data: 'one\n\nevent: evil\r\ntwo\rthree' });
    assert.equal(frame, 'event: x\ndata: one\ndata: \ndata: event: evil\ndata: two\ndata: three\n\n');
    assert.equal(frame.split('\n\n').length, 2, 'exactly one event terminator');
  });

  it('refuses an event name with a line break', () => {
    assert.throws(() => formatEvent({ event: 'a\nb', data: '' }), (error: unknown) => SseFramingError.is(error) && error.reason === 'newline_in_field');
  });

  it('frames comments and retry', () => {
    assert.equal(formatComment('heartbeat'), ': heartbeat\n\n');
    assert.equal(formatComment('a\nb'), ': a b\n\n');
    assert.equal(formatRetry(2000.7), 'retry: 2000\n\n');
  });

  it('parses Last-Event-ID', () => {
    assert.deepEqual(parseLastEventId(undefined), { kind: 'none' });
    assert.deepEqual(parseLastEventId(''), { kind: 'none' });
    assert.deepEqual(parseLastEventId(' 42 '), { kind: 'id', id: 42 });
    assert.deepEqual(parseLastEventId('abc'), { kind: 'invalid' });
    assert.deepEqual(parseLastEventId('-1'), { kind: 'invalid' });
    assert.deepEqual(parseLastEventId('99999999999999999'), { kind: 'invalid' });
  });
});
