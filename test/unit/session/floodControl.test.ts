import { strict as assert } from 'node:assert';
import { OutputRate, PollSample, calmPollsNeeded, estimatedRate, mayHaveTrimmed, resumeRows, rowsToAppend } from '../../../src/session/floodControl';
import { PaneState, STATE_FORMAT, parsePaneState } from '../../../src/multiplexer/controlMode/screenState';

function paneState(historySize: number, historyLimit = 5000): PaneState {
  const line = STATE_FORMAT.replace(/#\{(\w+)\}/g, (_, key: string) => ({ pane_id: '%1', history_size: String(historySize), history_limit: String(historyLimit) })[key] ?? '');
  return parsePaneState(line);
}

function sample(at: number, historySize: number, screen: string[], cursor: [number, number] = [0, 0], historyLimit = 50_000): PollSample {
  return { at, historySize, historyLimit, cursorX: cursor[0], cursorY: cursor[1], alternate: false, screen };
}

describe('flood control', () => {
  describe('OutputRate', () => {
    it('reports a flood only once output has stayed fast for a whole window', () => {
      const rate = new OutputRate(200, 20);
      // 30 kB every 10 ms: 3 MB/s.
      for (let t = 0; t < 190; t += 10) rate.add(30_000, t);
      assert.equal(rate.sustained(2_000_000, 190), false, 'not yet a whole window');
      for (let t = 190; t <= 260; t += 10) rate.add(30_000, t);
      assert.equal(rate.sustained(2_000_000, 260), true);
      assert.equal(rate.sustained(4_000_000, 260), false);
    });

    it('does not count a short burst, or output that has gone quiet', () => {
      const rate = new OutputRate(200, 20);
      rate.add(5_000_000, 0); // a big paste's echo, all at once
      assert.equal(rate.sustained(2_000_000, 10), false);
      assert.equal(rate.sustained(2_000_000, 500), false, 'the window emptied');
      rate.add(100, 600);
      assert.equal(rate.sustained(2_000_000, 850), false, 'a new run starts from nothing');
      rate.reset();
      assert.equal(rate.sustained(1, 900), false);
    });

    it('ends a run at a silent window and starts the next from there', () => {
      const rate = new OutputRate(200, 20);
      for (let t = 0; t <= 300; t += 10) rate.add(30_000, t);
      assert.equal(rate.sustained(2_000_000, 300), true);
      for (let t = 800; t <= 900; t += 10) rate.add(30_000, t);
      assert.equal(rate.sustained(2_000_000, 900), false, 'the new run is 100 ms old');
    });
  });

  describe('estimatedRate', () => {
    it('is zero when nothing changed, and counts scrolled rows at the screen\'s row length', () => {
      const screen = ['0123456789', 'abcdefghi', '$ '];
      assert.equal(estimatedRate(sample(0, 10, screen), sample(100, 10, [...screen])), 0);
      // 1000 rows scrolled in 100 ms, rows of about 8 bytes: tens of kB/s per row byte.
      const rate = estimatedRate(sample(0, 10, screen), sample(100, 1010, ['x'.repeat(9), 'y'.repeat(9), 'z'.repeat(9)]));
      assert.ok(rate > 90_000 && rate < 120_000, String(rate));
    });

    it('counts the rows that changed in place (a redrawing program), and a moved cursor', () => {
      const before = sample(0, 5, ['aaaa', 'bbbb', 'cccc']);
      assert.equal(estimatedRate(before, sample(1000, 5, ['aaaa', 'BBBB', 'cccc'])), 5);
      assert.ok(estimatedRate(before, sample(1000, 5, ['aaaa', 'bbbb', 'cccc'], [1, 0])) === 0, 'a moved cursor alone is no output to speak of');
      // Rows that only moved up by the scroll are not counted again.
      assert.equal(estimatedRate(before, sample(1000, 6, ['bbbb', 'cccc', 'dd'])), (5 + 5 + 3) / 3 + 3);
    });

    it('near history-limit, believes a small growth only if the screen moved up by as many rows', () => {
      const before = sample(0, 45_100, ['r1', 'r2', 'r3', 'r4', 'r5']);
      // Grew by 2 and the screen moved up 2 rows (the bottom row was half written): 2 rows.
      assert.ok(estimatedRate(before, sample(100, 45_102, ['r3', 'r4', 'r5', 'r6', 'r7'])) < 1000);
      // Grew by 2 but the screen shows other rows: 5000 were trimmed and 5002 scrolled by.
      assert.equal(estimatedRate(before, sample(100, 45_102, ['x1', 'x2', 'x3', 'x4', 'x5'])), Infinity);
      // Far from the limit the growth is exact.
      assert.ok(estimatedRate(sample(0, 100, ['r1', 'r2', 'r3', 'r4', 'r5']), sample(100, 102, ['x1', 'x2', 'x3', 'x4', 'x5'])) < 1000);
    });

    it('asks for more calm polls each time a flood comes straight back', () => {
      assert.equal(calmPollsNeeded(1, Infinity), 1);
      assert.equal(calmPollsNeeded(1, 300), 2);
      assert.equal(calmPollsNeeded(8, 300), 16);
      assert.equal(calmPollsNeeded(16, 300), 16);
      assert.equal(calmPollsNeeded(8, 2000), 8, 'a pause of a few seconds keeps the need');
      assert.equal(calmPollsNeeded(8, 6000), 1);
    });

    it('is unbounded when history shrank while the screen changed (trimmed: rows unknown)', () => {
      assert.equal(estimatedRate(sample(0, 4500, ['a']), sample(50, 4400, ['b'])), Infinity);
      assert.equal(estimatedRate(sample(0, 4500, ['a']), sample(50, 4500, ['a'])), 0);
    });
  });

  describe('appending after a flood', () => {
    const mark = { historySize: 100, historyLimit: 5000 };

    it('knows when tmux may have trimmed history', () => {
      assert.equal(mayHaveTrimmed(4499, 5000), false);
      assert.equal(mayHaveTrimmed(4500, 5000), true);
      assert.equal(mayHaveTrimmed(0, 0), false);
      assert.equal(resumeRows(mark, 400, 24), 300 + 48);
      assert.equal(resumeRows(mark, 100, 24), 48);
    });

    it('takes the rows after the mark from what the resume captured', () => {
      const captured = Array.from({ length: 60 }, (_, i) => `row ${i}`);
      assert.deepEqual(rowsToAppend(mark, paneState(150), captured.slice(10), 50, true), captured.slice(10).slice(-50));
      assert.deepEqual(rowsToAppend(mark, paneState(110), captured.slice(10), 50, true), captured.slice(-10));
      assert.deepEqual(rowsToAppend(mark, paneState(100), captured.slice(10), 50, false), []);
    });

    it('refuses when an exact append is impossible', () => {
      const rows = (n: number): string[] => Array.from({ length: n }, (_, i) => String(i));
      assert.equal(rowsToAppend(mark, paneState(90), rows(50), 50, true), undefined, 'history shrank: cleared');
      assert.equal(rowsToAppend(mark, paneState(200), rows(50), 50, true), undefined, 'more rows scrolled than were read');
      assert.equal(rowsToAppend(mark, paneState(4600), rows(50), 4600, true), undefined, 'history reached the trim zone');
      assert.equal(rowsToAppend({ historySize: 4600, historyLimit: 5000 }, paneState(4600), rows(50), 50, true), undefined, 'at the limit, history that moved was trimmed');
      assert.deepEqual(rowsToAppend({ historySize: 4600, historyLimit: 5000 }, paneState(4600), rows(50), 50, false), [], 'nothing moved: nothing to append');
      assert.equal(rowsToAppend(mark, paneState(120), rows(49), 50, true), undefined, 'tmux returned another number of rows than asked');
      assert.deepEqual(rowsToAppend({ historySize: 0, historyLimit: 5000 }, paneState(30), rows(30), 50, true), rows(30), 'fewer rows than asked when history is short');
    });
  });
});
