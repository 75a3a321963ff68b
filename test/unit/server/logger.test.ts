import * as assert from 'node:assert/strict';
import { createJsonLogger } from '../../../src/server/logger';

describe('server/logger', () => {
  it('writes one JSON object per line, with reserved fields protected', () => {
    const lines: string[] = [];
    const logger = createJsonLogger((line) => lines.push(line));
    logger.log('info', 'request', { status: 200, msg: 'overwrite attempt', note: 'two\nlines', skipped: undefined });
    assert.equal(lines.length, 1);
    assert.ok(lines[0].endsWith('\n'));
    assert.equal(lines[0].indexOf('\n'), lines[0].length - 1, 'exactly one line');
    const record = JSON.parse(lines[0]) as Record<string, unknown>;
    assert.equal(record.msg, 'request');
    assert.equal(record.level, 'info');
    assert.equal(record.status, 200);
    assert.equal(record.note, 'two\nlines');
    assert.ok(!('skipped' in record));
    assert.ok(!Number.isNaN(Date.parse(String(record.time))));
  });

  it('drops lines below its level', () => {
    const lines: string[] = [];
    const logger = createJsonLogger((line) => lines.push(line), 'info');
    logger.log('debug', 'presence renewal');
    logger.log('info', 'request');
    logger.log('error', 'store');
    assert.deepEqual(lines.map((line) => (JSON.parse(line) as { msg: string }).msg), ['request', 'store']);
    const chatty: string[] = [];
    createJsonLogger((line) => chatty.push(line), 'debug').log('debug', 'presence renewal');
    assert.equal(chatty.length, 1);
  });
});
