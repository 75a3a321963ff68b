import { strict as assert } from 'node:assert';
import { Terminal } from '@xterm/headless';
import {
  PaneState, STATE_FORMAT, SyncError, keepHistoryTail, parsePaneState, parseSyncReplies, renderAppend, renderPaint, renderSync, syncCommands,
} from '../../../../src/multiplexer/controlMode/screenState';

const E = '\x1b';

function stateLine(overrides: Record<string, string> = {}): string {
  const values: Record<string, string> = {
    pane_id: '%3', pane_width: '20', pane_height: '4', cursor_x: '2', cursor_y: '3', cursor_flag: '1',
    insert_flag: '0', keypad_cursor_flag: '0', keypad_flag: '0', wrap_flag: '1', origin_flag: '0',
    scroll_region_upper: '0', scroll_region_lower: '3', alternate_on: '0', alternate_saved_x: '4294967295',
    alternate_saved_y: '4294967295', mouse_standard_flag: '0', mouse_button_flag: '0', mouse_all_flag: '0',
    mouse_sgr_flag: '0', mouse_utf8_flag: '', history_size: '2', history_limit: '5000', pane_tabs: '8,16',
    // tmux 3.3a has no bracketed_paste, cursor_shape or cursor_blinking: they expand to nothing.
    bracketed_paste: '', cursor_shape: '', cursor_blinking: '', ...overrides,
  };
  // The same order and shape as tmux expands STATE_FORMAT.
  return STATE_FORMAT.replace(/#\{(\w+)\}/g, (_, key: string) => values[key] ?? '');
}

async function render(bytes: string, cols = 20, rows = 4): Promise<Terminal> {
  const terminal = new Terminal({ cols, rows, allowProposedApi: true, scrollback: 1000 });
  await new Promise<void>((resolve) => terminal.write('junk that must go\r\n'.repeat(10), resolve));
  await new Promise<void>((resolve) => terminal.write(bytes, resolve));
  return terminal;
}

function lines(terminal: Terminal): string[] {
  const buffer = terminal.buffer.active;
  return Array.from({ length: buffer.length }, (_, i) => buffer.getLine(i)!.translateToString(true));
}

describe('control mode state sync', () => {
  it('builds one batch of commands with quoted targets and optional history', () => {
    const sync = syncCommands('%3', 500);
    assert.deepEqual(sync.commands.slice(1), [
      'capture-pane -p -e -J -t %3 -S -500 -E -1',
      'capture-pane -a -q -p -e -t %3',
      'capture-pane -p -e -t %3 -S 0 -E -',
    ]);
    assert.match(sync.commands[0], /^display-message -p -t %3 'tether-state pane_id=#\{pane_id\} .*history_size=#\{history_size\} history_limit=#\{history_limit\} pane_tabs=#\{pane_tabs\} .*cursor_blinking=#\{cursor_blinking\}'$/);
    assert.equal(syncCommands('=tether_x:', 0).commands.length, 3);
    assert.equal(syncCommands("a'b", 0).commands[1], `capture-pane -a -q -p -e -t 'a'\\''b'`);
  });

  it('parses the pane state, treating tmux UINT_MAX and empty values as unknown', () => {
    const state = parsePaneState(stateLine({ cursor_flag: '0', mouse_utf8_flag: '' }));
    assert.equal(state.paneId, 3);
    assert.equal(state.cursorVisible, false);
    assert.equal(state.altSavedX, -1);
    assert.equal(state.mouseUtf8, false);
    assert.throws(() => parsePaneState('garbage'), SyncError);
    assert.throws(() => parsePaneState(stateLine({ pane_id: '' })), SyncError);
  });

  it('renders a normal screen with history into scrollback (golden)', async () => {
    const sync = syncCommands('%3', 100);
    const snapshot = parseSyncReplies(sync, [
      { error: false, lines: [stateLine()] },
      { error: false, lines: ['old 1', `${E}[31mred`, 'still red'] },
      { error: false, lines: [''] },
      { error: false, lines: ['$ ls', `${E}[42mgreen bg`, '', '$ '] },
    ]);
    const bytes = renderSync(snapshot);
    assert.equal(
      bytes,
      // The screen is another capture: it starts from the default, not from the history's red.
      `${E}cold 1${E}[0m\r\n${E}[31mred${E}[0m\r\n${E}[31mstill red${E}[0m\r\n$ ls${E}[0m\r\n${E}[42mgreen bg` +
        `${E}[0m\r\n${E}[42m${E}[0m\r\n${E}[42m$ ${E}[0m${E}[4;3H`,
    );
    const terminal = await render(bytes);
    assert.deepEqual(lines(terminal), ['old 1', 'red', 'still red', '$ ls', 'green bg', '', '$ ']);
    assert.equal(terminal.buffer.active.baseY, 3);
    assert.equal(terminal.buffer.active.cursorY, 3);
    assert.equal(terminal.buffer.active.cursorX, 2);
    // The scrolled-in empty row took no background colour from the line above.
    const cell = terminal.buffer.active.getLine(5)!.getCell(10)!;
    assert.equal(cell.isBgDefault(), true);
  });

  it('ignores the history reply when tmux has no history (it would be visible row 0)', () => {
    const sync = syncCommands('%3', 100);
    const snapshot = parseSyncReplies(sync, [
      { error: false, lines: [stateLine({ history_size: '0' })] },
      { error: false, lines: ['$ ls'] },
      { error: false, lines: [''] },
      { error: false, lines: ['$ ls', '', '', ''] },
    ]);
    assert.deepEqual(snapshot.history, []);
    assert.equal(renderSync(snapshot), `${E}c$ ls${E}[0m\r\n${E}[0m\r\n${E}[0m\r\n${E}[0m${E}[4;3H`);
  });

  it('renders the alternate screen over the saved normal screen (golden)', async () => {
    const sync = syncCommands('%3', 100);
    const snapshot = parseSyncReplies(sync, [
      { error: false, lines: [stateLine({ alternate_on: '1', alternate_saved_x: '5', alternate_saved_y: '2', cursor_x: '0', cursor_y: '0', keypad_cursor_flag: '1', keypad_flag: '1', mouse_button_flag: '1', mouse_sgr_flag: '1' })] },
      { error: false, lines: ['hist'] },
      { error: false, lines: ['$ x', '$ y', '$ vim', ''] },
      { error: false, lines: ['text', `${E}[94m~`, '~', `${E}[39m"f" 1L`] },
    ]);
    const bytes = renderSync(snapshot);
    assert.equal(
      bytes,
      `${E}chist${E}[0m\r\n$ x${E}[0m\r\n$ y${E}[0m\r\n$ vim${E}[0m\r\n${E}[0m${E}[3;6H${E}[?1049h${E}[H` +
        `text${E}[0m\r\n${E}[94m~${E}[0m\r\n${E}[94m~${E}[0m\r\n${E}[94m${E}[39m"f" 1L${E}[0m` +
        `${E}[1;1H${E}[?1h${E}=${E}[?1002h${E}[?1006h`,
    );
    const terminal = await render(bytes);
    assert.equal(terminal.buffer.active.type, 'alternate');
    assert.deepEqual(lines(terminal), ['text', '~', '~', '"f" 1L']);
    assert.equal(terminal.modes.applicationCursorKeysMode, true);
    assert.equal(terminal.modes.applicationKeypadMode, true);
    assert.equal(terminal.modes.mouseTrackingMode, 'drag');
    // Leaving the alternate screen shows the normal screen and history, cursor where tmux saved it.
    await new Promise<void>((resolve) => terminal.write(`${E}[?1049l`, resolve));
    assert.deepEqual(lines(terminal), ['hist', '$ x', '$ y', '$ vim', '']);
    assert.equal(terminal.buffer.active.cursorY, 2);
    assert.equal(terminal.buffer.active.cursorX, 5);
  });

  it('renders origin mode with a scroll region and a hidden cursor (golden)', async () => {
    const sync = syncCommands('%3', 0);
    const snapshot = parseSyncReplies(sync, [
      { error: false, lines: [stateLine({ origin_flag: '1', scroll_region_upper: '1', scroll_region_lower: '2', cursor_x: '4', cursor_y: '2', cursor_flag: '0', wrap_flag: '0', insert_flag: '1' })] },
      { error: false, lines: [] },
      { error: false, lines: ['top', 'a', 'b', 'bottom'] },
    ]);
    const bytes = renderSync(snapshot);
    assert.equal(bytes, `${E}ctop${E}[0m\r\na${E}[0m\r\nb${E}[0m\r\nbottom${E}[0m${E}[2;3r${E}[?6h${E}[2;5H${E}[?7l${E}[4h${E}[?25l`);
    const terminal = await render(bytes);
    assert.equal(terminal.modes.originMode, true);
    assert.equal(terminal.modes.wraparoundMode, false);
    assert.equal(terminal.modes.insertMode, true);
    assert.equal(terminal.buffer.active.cursorY, 2);
    assert.equal(terminal.buffer.active.cursorX, 4);
    // The region is in force: a line feed at its bottom scrolls only rows 1..2.
    await new Promise<void>((resolve) => terminal.write('\nZ', resolve));
    assert.deepEqual(lines(terminal), ['top', 'b', '    Z', 'bottom']);
  });

  it('restores tab stops, bracketed paste and the cursor shape when tmux reports them', async () => {
    const sync = syncCommands('%3', 0);
    const replies = (overrides: Record<string, string>) => [
      { error: false, lines: [stateLine({ history_size: '0', cursor_x: '0', cursor_y: '0', ...overrides })] },
      { error: false, lines: [] },
      { error: false, lines: ['a', 'b', 'c', 'd'] },
    ];
    const custom = renderSync(parseSyncReplies(sync, replies({ pane_tabs: '4,11', bracketed_paste: '1', cursor_shape: 'bar', cursor_blinking: '0' })));
    assert.ok(custom.endsWith(`${E}[3g${E}[5G${E}H${E}[12G${E}H${E}[1;1H${E}[?2004h${E}[6 q`), JSON.stringify(custom.slice(-60)));
    const terminal = await render(custom);
    assert.equal(terminal.modes.bracketedPasteMode, true);
    await new Promise<void>((resolve) => terminal.write('\t', resolve));
    assert.equal(terminal.buffer.active.cursorX, 4, 'the first tab stop is the pane\'s, not every 8');
    await new Promise<void>((resolve) => terminal.write('\t', resolve));
    assert.equal(terminal.buffer.active.cursorX, 11);
    // The standard stops (every 8) and a tmux without the newer formats add nothing after RIS.
    const standard = renderSync(parseSyncReplies(sync, replies({})));
    assert.ok(standard.endsWith(`${E}[1;1H`), JSON.stringify(standard.slice(-30)));
    assert.ok(renderSync(parseSyncReplies(sync, replies({ cursor_shape: 'underline', cursor_blinking: '1' }))).endsWith(`${E}[3 q`));
    assert.ok(!renderSync(parseSyncReplies(sync, replies({ pane_tabs: '' }))).includes(`${E}[3g`), 'an empty list is unknown: RIS stops stay');
    assert.equal(parsePaneState(stateLine({ pane_tabs: '8,x' })).tabStops, undefined, 'a list it cannot read is ignored');
  });

  it('pads a screen shorter than the terminal and reports failed commands', () => {
    const sync = syncCommands('%3', 0);
    const snapshot = parseSyncReplies(sync, [
      { error: false, lines: [stateLine({ history_size: '0', cursor_y: '0', cursor_x: '0' })] },
      { error: false, lines: [] },
      { error: false, lines: ['only'] },
    ]);
    assert.equal(renderSync(snapshot, 3), `${E}conly${E}[0m\r\n${E}[0m\r\n${E}[0m${E}[1;1H`);
    assert.throws(() => parseSyncReplies(sync, [{ error: true, lines: ["can't find pane: %3"] }, { error: false, lines: [] }, { error: false, lines: [] }]), /display-message failed/);
    assert.throws(() => parseSyncReplies(sync, []), SyncError);
  });

  it('keeps PaneState keys in step with the format', () => {
    const state: PaneState = parsePaneState(stateLine());
    assert.equal(Object.keys(state).length, 27);
  });

  describe('after a flood (paints, then an append that keeps the scrollback)', () => {
    const write = (terminal: Terminal, bytes: string): Promise<void> => new Promise<void>((resolve) => terminal.write(bytes, resolve));
    const rowsSync = syncCommands('%3', 6, { rows: true });

    it('captures history as rows when asked, and keeps every captured row', () => {
      assert.equal(rowsSync.commands[1], 'capture-pane -p -e -t %3 -S -6 -E -1');
      const snapshot = parseSyncReplies(rowsSync, [
        { error: false, lines: [stateLine({ history_size: '9' })] },
        { error: false, lines: ['a', 'b', '', 'd', 'e', 'f'] },
        { error: false, lines: [''] },
        { error: false, lines: ['1', '2', '3', '4'] },
      ]);
      assert.deepEqual(snapshot.history, ['a', 'b', '', 'd', 'e', 'f']);
    });

    it('paints the screen in place: nothing scrolls, the scrollback stays', async () => {
      const terminal = new Terminal({ cols: 20, rows: 4, allowProposedApi: true, scrollback: 1000 });
      await write(terminal, 'h1\r\nh2\r\ns1\r\ns2\r\ns3\r\n$ ');
      await write(terminal, renderPaint(parsePaneState(stateLine({ cursor_x: '1', cursor_y: '1' })), ['x', `${E}[31my`, 'z'], 4, false));
      assert.deepEqual(lines(terminal), ['h1', 'h2', 'x', 'y', 'z', '']);
      assert.equal(terminal.buffer.active.getLine(4)!.getCell(0)!.getFgColor(), 1, 'SGR carried to the next row as tmux -e means');
      assert.equal(terminal.buffer.active.cursorY, 1);
      // A full-screen program: the paint moves to the alternate screen and back.
      await write(terminal, renderPaint(parsePaneState(stateLine({ alternate_on: '1', cursor_flag: '0' })), ['vim', '~', '~', '~'], 4, false));
      assert.equal(terminal.buffer.active.type, 'alternate');
      await write(terminal, renderPaint(parsePaneState(stateLine()), ['p', 'q', 'r', 's'], 4, true));
      assert.equal(terminal.buffer.active.type, 'normal');
      assert.deepEqual(lines(terminal), ['h1', 'h2', 'p', 'q', 'r', 's']);
    });

    it('appends exactly the rows that scrolled by, so the buffer equals a full sync of the new state', async () => {
      // Before: tmux history rows 0-1, screen rows 2-5; the terminal has it (a sync), with modes on.
      const before = parseSyncReplies(syncCommands('%3', 100), [
        { error: false, lines: [stateLine({ mouse_sgr_flag: '1', mouse_all_flag: '1', keypad_cursor_flag: '1', scroll_region_upper: '1', pane_tabs: '4,8' })] },
        { error: false, lines: ['h1', 'h2'] },
        { error: false, lines: [''] },
        { error: false, lines: ['s1', 's2', 's3', '$ seq'] },
      ]);
      const terminal = new Terminal({ cols: 20, rows: 4, allowProposedApi: true, scrollback: 1000 });
      await write(terminal, renderSync(before, 4));
      // The flood's paints leave the screen showing anything, in any buffer.
      await write(terminal, renderPaint(parsePaneState(stateLine({ alternate_on: '1' })), ['junk', 'junk', 'junk', 'junk'], 4, false));
      // After: 6 more rows went into tmux's history (rows 2-7), screen rows 8-11, the modes off.
      const after = { history_size: '8', cursor_x: '2', cursor_y: '3', pane_tabs: '8,16' };
      const appendSync = syncCommands('%3', 9, { rows: true });
      const captured = parseSyncReplies(appendSync, [
        { error: false, lines: [stateLine(after)] },
        { error: false, lines: ['h1', 'h2', 's1', 's2', 's3', '$ seq', `${E}[1m1`, '2'] },
        { error: false, lines: [''] },
        { error: false, lines: ['3', '4', '5', '$ '] },
      ]);
      await write(terminal, renderAppend(keepHistoryTail(captured, 6), 4));

      const fresh = new Terminal({ cols: 20, rows: 4, allowProposedApi: true, scrollback: 1000 });
      const full = parseSyncReplies(syncCommands('%3', 100), [
        { error: false, lines: [stateLine(after)] },
        { error: false, lines: ['h1', 'h2', 's1', 's2', 's3', '$ seq', `${E}[1m1`, '2'] },
        { error: false, lines: [''] },
        { error: false, lines: ['3', '4', '5', '$ '] },
      ]);
      await write(fresh, renderSync(full, 4));
      assert.deepEqual(lines(terminal), ['h1', 'h2', 's1', 's2', 's3', '$ seq', '1', '2', '3', '4', '5', '$ ']);
      assert.deepEqual(lines(terminal), lines(fresh));
      assert.equal(terminal.buffer.active.type, 'normal');
      const bold = (t: Terminal): number[] => Array.from({ length: 12 }, (_, i) => t.buffer.active.getLine(i)!.getCell(0)!.isBold());
      assert.deepEqual(bold(terminal), bold(fresh), 'SGR carried across rows as in a full sync');
      assert.deepEqual([terminal.buffer.active.cursorX, terminal.buffer.active.cursorY], [fresh.buffer.active.cursorX, fresh.buffer.active.cursorY]);
      assert.deepEqual(terminal.modes, fresh.modes, 'modes the pane turned off are off, as after RIS');
      // Tab stops are the pane's (8, 16), not the ones set before the flood (4, 8).
      await write(terminal, '\r\t');
      assert.equal(terminal.buffer.active.cursorX, 8);
      // The scroll region is the whole screen again: a line feed at the bottom scrolls everything.
      await write(terminal, '\r\n');
      assert.deepEqual(lines(terminal).slice(-4), ['4', '5', '$ ', '']);
    });

    it('keeps the colour that rows cut off the front of a capture carried into the rows kept', async () => {
      // tmux writes an SGR only where attributes change: every row of a blue flood but the first is bare.
      const captured = parseSyncReplies(syncCommands('%3', 6, { rows: true }), [
        { error: false, lines: [stateLine({ history_size: '6', cursor_x: '0', cursor_y: '0' })] },
        { error: false, lines: [`${E}[44mA`, 'B', 'C', 'D', 'E', 'F'] },
        { error: false, lines: [''] },
        { error: false, lines: ['s1', 's2', 's3', 's4'] },
      ]);
      const terminal = new Terminal({ cols: 20, rows: 4, allowProposedApi: true, scrollback: 1000 });
      await write(terminal, renderAppend(keepHistoryTail(captured, 3), 4));
      const bg = (row: number): number => terminal.buffer.active.getLine(row)!.getCell(0)!.getBgColor();
      assert.deepEqual([bg(0), bg(1), bg(2)], [4, 4, 4], 'D, E and F are blue, as in tmux');
      assert.equal(terminal.buffer.active.getLine(3)!.getCell(0)!.isBgDefault(), true, 'the screen capture starts from the default');
    });

    it('ends an append on the alternate screen when the pane is in a full-screen program', async () => {
      const terminal = new Terminal({ cols: 20, rows: 4, allowProposedApi: true, scrollback: 1000 });
      await write(terminal, 'h1\r\nh2\r\ns1\r\ns2\r\ns3\r\n$ vim');
      const captured = parseSyncReplies(syncCommands('%3', 3, { rows: true }), [
        { error: false, lines: [stateLine({ history_size: '3', alternate_on: '1', alternate_saved_x: '5', alternate_saved_y: '3', cursor_x: '0', cursor_y: '0', bracketed_paste: '0', cursor_shape: 'default' })] },
        { error: false, lines: ['h1', 'h2', 's1'] },
        { error: false, lines: ['s2', 's3', '$ vim', ''] },
        { error: false, lines: ['text', '~', '~', ':q'] },
      ]);
      const bytes = renderAppend(keepHistoryTail(captured, 1), 4);
      assert.ok(bytes.endsWith(`${E}[?2004l${E}[0 q`), 'known modes are written either way');
      await write(terminal, bytes);
      assert.equal(terminal.buffer.active.type, 'alternate');
      assert.deepEqual(lines(terminal), ['text', '~', '~', ':q']);
      await write(terminal, `${E}[?1049l`);
      assert.deepEqual(lines(terminal), ['h1', 'h2', 's1', 's2', 's3', '$ vim', '']);
    });
  });
});
