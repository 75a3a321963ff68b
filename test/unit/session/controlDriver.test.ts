import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import type { ClientChannel } from 'ssh2';
import {
  ControlDriver, ControlError, MAX_INPUT_IN_FLIGHT, MAX_LINE_BYTES, claimCommand, controlAttachScript, controlModeSupported, encodeInput,
  layoutSize,
} from '../../../src/session/controlDriver';
import { STATE_FORMAT } from '../../../src/multiplexer/controlMode/screenState';
import { silentLogger } from '../../../src/common/logger';

const ID = 'abcdefghijklmnopqrstuvwxyz';
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Stands in for the ssh2 pty channel: records what the driver writes, lets the test play tmux. */
class FakeChannel extends EventEmitter {
  readonly stderr = new EventEmitter();
  readonly lines: string[] = [];
  closed = false;
  paused = false;
  private number = 100;

  write(data: string): boolean {
    for (const line of data.split('\n').slice(0, -1)) this.lines.push(line);
    return true;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  tmux(text: string): void {
    this.emit('data', Buffer.from(text, 'latin1'));
  }
  /** One reply block from our client (flags 1). */
  block(lines: string[] = [], error = false): string {
    const n = this.number++;
    return `%begin 1700000000 ${n} 1\r\n${lines.map((line) => `${line}\r\n`).join('')}%${error ? 'error' : 'end'} 1700000000 ${n} 1\r\n`;
  }
}

/** What tmux types for our send-keys commands (literal text, or hex bytes). */
function decodeCommands(commands: string[]): Buffer {
  return Buffer.concat(commands.map((command) => {
    const literal = /^send-keys -l -t %4 -- '([^']*)'$/.exec(command);
    if (literal) return Buffer.from(literal[1], 'latin1');
    const hex = /^send-keys -H -t %4 ((?:[0-9a-f]{2} )*[0-9a-f]{2})$/.exec(command);
    assert.ok(hex, command.slice(0, 80));
    return Buffer.from(hex[1].replace(/ /g, ''), 'hex');
  }));
}

function stateLine(overrides: Record<string, string> = {}): string {
  const values: Record<string, string> = {
    pane_id: '%4', pane_width: '80', pane_height: '3', cursor_x: '2', cursor_y: '0', cursor_flag: '1', wrap_flag: '1',
    scroll_region_upper: '0', scroll_region_lower: '2', alternate_on: '0', history_size: '0',
    pane_tabs: '8,16,24,32,40,48,56,64,72', ...overrides,
  };
  return STATE_FORMAT.replace(/#\{(\w+)\}/g, (_, key: string) => values[key] ?? '0');
}

/** Replies to a sync line: the refresh-client commands, then display and three captures. */
function syncReplies(channel: FakeChannel, line: string, screen: string[], state = stateLine()): string {
  const commands = line.split(' ; ');
  let out = '';
  for (const command of commands) {
    if (command.startsWith('display-message')) out += channel.block([state]);
    else if (command.startsWith('capture-pane -p -e -t')) out += channel.block(screen);
    else out += channel.block();
  }
  return out;
}

function started(): { channel: FakeChannel; driver: ControlDriver; output: Buffer[] } {
  const channel = new FakeChannel();
  const driver = new ControlDriver(channel as unknown as ClientChannel, ID, { cols: 80, rows: 3 }, { historyLines: 10, log: silentLogger });
  const output: Buffer[] = [];
  driver.onOutput((chunk) => output.push(chunk));
  return { channel, driver, output };
}

/** A started driver whose flood path reacts at once: any output starts a flood, any calm poll ends it. */
async function startedForFloods(): Promise<{ channel: FakeChannel; driver: ControlDriver; output: Buffer[] }> {
  const channel = new FakeChannel();
  const driver = new ControlDriver(channel as unknown as ClientChannel, ID, { cols: 80, rows: 3 }, {
    historyLines: 100, log: silentLogger, flood: { enterBytesPerSecond: 1, exitBytesPerSecond: 1, windowMs: 20, pollIntervalMs: 1 },
  });
  const output: Buffer[] = [];
  driver.onOutput((chunk) => output.push(chunk));
  channel.tmux(`\x1bP1000p%session-changed $1 x\r\n`);
  channel.tmux(syncReplies(channel, channel.lines[0], ['', '', '']));
  await driver.started;
  return { channel, driver, output };
}

/** Streams output in 5 ms steps until the driver sends its flood mark (the rate needs a whole window). */
async function floodUntilMarked(channel: FakeChannel, driver: ControlDriver, sent: number): Promise<void> {
  for (let i = 0; i < 40 && channel.lines.length === sent; i++) {
    channel.tmux('%output %4 flood\r\n');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.equal(driver.flooding, true);
}

describe('control mode driver (against a scripted tmux)', () => {
  it('runs tmux in -CC control mode on the session, with TMUX unset', () => {
    assert.equal(controlAttachScript(ID), `unset TMUX TMUX_PANE\nexec tmux -u -L tether -CC attach-session -t =tether_${ID}`);
    assert.throws(() => controlAttachScript('bad id; rm -rf /'));
    assert.equal(controlModeSupported({ major: 3, minor: 2, suffix: '' }), true);
    assert.equal(controlModeSupported({ major: 3, minor: 1, suffix: 'c' }), false);
    assert.equal(controlModeSupported(undefined), false);
  });

  it('syncs only after the attach, drops output covered by the state and queues output after it', async () => {
    const { channel, driver, output } = started();
    channel.tmux('motd\r\n\x1bP1000p%begin 1 1 0\r\n%end 1 1 0\r\n%output %4 before-ready\r\n');
    assert.equal(channel.lines.length, 0, 'nothing is sent before %session-changed');
    channel.tmux(`%session-changed $1 tether_${ID}\r\n`);
    assert.equal(channel.lines.length, 1);
    const line = channel.lines[0];
    assert.match(line, /^refresh-client -C 80,3 ; refresh-client -f pause-after=5 ; display-message -p -t =tether_abcdefghijklmnopqrstuvwxyz: /);
    // Output parsed by tmux before our line ran is part of the captured state: dropped.
    channel.tmux('%output %4 covered\r\n');
    const replies = syncReplies(channel, line, ['$ covered', '', '']);
    const firstBlockEnd = replies.indexOf('%end') + replies.slice(replies.indexOf('%end')).indexOf('\n') + 1;
    channel.tmux(replies.slice(0, firstBlockEnd));
    // After the first block: not in the state, so it must follow it.
    channel.tmux('%output %4 after\r\n%output %9 other-pane\r\n');
    channel.tmux(replies.slice(firstBlockEnd));
    channel.tmux('%output %4 live\\015\\012\r\n');
    await driver.started;
    const text = Buffer.concat(output).toString('utf8');
    assert.equal(text, `\x1bc$ covered\x1b[0m\r\n\x1b[0m\r\n\x1b[0m\x1b[1;3Hafterlive\r\n`);
    assert.equal(driver.pane, '%4');
  });

  it('encodes input as literal runs and hex bytes that tmux types back exactly', () => {
    const input = Buffer.from("ls -la 'x y' \\ ; #{pane_id} $HOME\r\x1b[A\x03é-", 'utf8');
    const lines = encodeInput(input, 4);
    assert.deepEqual(lines, [{
      bytes: input.length,
      commands: [
        "send-keys -l -t %4 -- 'ls -la '", 'send-keys -H -t %4 27', "send-keys -l -t %4 -- 'x y'", 'send-keys -H -t %4 27',
        "send-keys -l -t %4 -- ' \\ ; #{pane_id} $HOME'", 'send-keys -H -t %4 0d 1b', "send-keys -l -t %4 -- '[A'",
        'send-keys -H -t %4 03 c3 a9', "send-keys -l -t %4 -- '-'",
      ],
    }]);
    assert.deepEqual(decodeCommands(lines.flatMap((line) => line.commands)), input);
  });

  it('sends input in lines of bounded size, with a bounded number in flight, in order', async () => {
    const { channel, driver } = started();
    channel.tmux(`\x1bP1000p%session-changed $1 x\r\n`);
    channel.tmux(syncReplies(channel, channel.lines[0], ['', '', '']));
    await driver.started;
    const sentBefore = channel.lines.length;
    const input = Buffer.concat([
      Buffer.from(Array.from({ length: 25_000 }, (_, i) => (i * 7) % 256)),
      Buffer.from('plain text typed by a user, and pasted; '.repeat(400)),
      Buffer.from(Array.from({ length: 5_000 }, (_, i) => (i % 2 ? 0x27 : 0x61))),
    ]);
    driver.write(input.subarray(0, 10_000));
    driver.write(input.subarray(10_000));
    const received: Buffer[] = [];
    let maxInFlight = 0;
    let replied = sentBefore;
    while (replied < channel.lines.length) {
      maxInFlight = Math.max(maxInFlight, channel.lines.length - replied);
      const line = channel.lines[replied++];
      assert.ok(line.length <= MAX_LINE_BYTES, `line of ${line.length} bytes`);
      const commands = line.split(' ; ');
      received.push(decodeCommands(commands));
      channel.tmux(commands.map(() => channel.block()).join(''));
      await tick();
    }
    assert.deepEqual(Buffer.concat(received), input);
    assert.equal(maxInFlight, MAX_INPUT_IN_FLIGHT);
  });

  it('answers %pause with continue and a fresh sync on one line, and coalesces resizes', async () => {
    const { channel, driver, output } = started();
    channel.tmux(`\x1bP1000p%session-changed $1 x\r\n`);
    channel.tmux(syncReplies(channel, channel.lines[0], ['', '', '']));
    await driver.started;
    channel.tmux('%pause %4\r\n');
    const line = channel.lines[channel.lines.length - 1];
    assert.match(line, /^refresh-client -C 80,3 ; refresh-client -A '%4:continue' ; display-message -p -t %4 /);
    driver.resize({ cols: 100, rows: 5 });
    driver.resize({ cols: 120, rows: 6 });
    assert.equal(channel.lines[channel.lines.length - 1], line, 'one sync in flight at a time');
    output.length = 0;
    channel.tmux(syncReplies(channel, line, ['paused', '', ''], stateLine({ history_size: '0' })));
    await tick();
    assert.match(Buffer.concat(output).toString(), /^\x1bcpaused/);
    const next = channel.lines[channel.lines.length - 1];
    assert.match(next, /^refresh-client -C 120,6 ; display-message /);
  });

  it('floods: marks its place, drops output after the mark, pauses, paints polls, and resumes with an append', async () => {
    const { channel, driver, output } = await startedForFloods();
    const sent = channel.lines.length;
    await floodUntilMarked(channel, driver, sent);
    assert.equal(channel.lines.length, sent + 1, 'the flood starts with one mark');
    output.length = 0;
    assert.match(channel.lines[sent], /^display-message -p -t %4 'tether-state /);
    assert.equal(driver.flooding, true);
    // In one chunk: output before the mark's reply is shown, output after it is not.
    channel.tmux(`%output %4 before-mark\r\n${channel.block([stateLine({ history_size: '7', history_limit: '5000' })])}%output %4 after-mark\r\n`);
    await tick();
    assert.equal(Buffer.concat(output).toString(), 'before-mark');
    assert.equal(channel.lines[sent + 1], "refresh-client -A '%4:pause'");
    assert.match(channel.lines[sent + 2], /^display-message -p -t %4 '.*' ; capture-pane -p -e -t %4 -S 0 -E -$/);
    channel.tmux(`%pause %4\r\n${channel.block()}`);
    // Poll 1: painted in place; poll 2 sees nothing change, so the flood ends.
    channel.tmux(channel.block([stateLine({ history_size: '9', history_limit: '5000', cursor_y: '2' })]) + channel.block(['x', 'y', '$ ']));
    await tick();
    assert.match(Buffer.concat(output).toString(), /^before-mark\x1b\[0m\x1b\[\?6l\x1b\[\?7l\x1b\[1;1H\x1b\[2Kx/);
    await new Promise((resolve) => setTimeout(resolve, 10));
    const poll2 = channel.lines[channel.lines.length - 1];
    assert.match(poll2, /^display-message .* ; capture-pane -p -e -t %4 -S 0 -E -$/);
    channel.tmux(channel.block([stateLine({ history_size: '9', history_limit: '5000', cursor_y: '2' })]) + channel.block(['x', 'y', '$ ']));
    await tick();
    const resume = channel.lines[channel.lines.length - 1];
    // 2 rows seen to scroll since the mark, plus two screens of margin.
    assert.equal(resume.split(' ; ').slice(0, 2).join(' ; '), "refresh-client -C 80,3 ; refresh-client -A '%4:continue'");
    assert.match(resume, / ; capture-pane -p -e -t %4 -S -8 -E -1 ; /);
    output.length = 0;
    channel.tmux(channel.block() + channel.block(['%continue %4']) + '%output %4 after-continue\r\n' +
      channel.block([stateLine({ history_size: '9', history_limit: '5000', cursor_y: '2' })]) +
      channel.block(['h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'row7', 'row8']) + channel.block(['']) + channel.block(['x', 'y', '$ ']));
    await tick();
    const text = Buffer.concat(output).toString();
    assert.ok(text.startsWith('\x1b[?1049l') && !text.includes('\x1bc'), 'an append, not RIS');
    assert.ok(text.includes('\x1b[2Krow7\x1b[0m\r\n\x1b[2Krow8\x1b[0m\r\n\x1b[2Kx'), JSON.stringify(text));
    assert.ok(!text.includes('h7'), 'rows from before the mark are not appended again');
    assert.ok(text.endsWith('after-continue'), 'output after the resume follows the append');
    assert.equal(driver.flooding, false);
  });

  it('ends a flood with a full sync when the terminal was resized meanwhile', async () => {
    const { channel, driver, output } = await startedForFloods();
    await floodUntilMarked(channel, driver, channel.lines.length);
    channel.tmux(channel.block([stateLine({ history_size: '7' })]));
    await tick();
    driver.resize({ cols: 90, rows: 4 });
    channel.tmux(channel.block());
    const poll = (): void => channel.tmux(channel.block([stateLine({ history_size: '9', pane_width: '90', pane_height: '4' })]) + channel.block(['x', 'y', 'z', '$ ']));
    assert.match(channel.lines[channel.lines.length - 1], /^display-message /, 'the first poll was sent before the resize');
    poll();
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.match(channel.lines[channel.lines.length - 1], /^refresh-client -C 90,4 ; display-message /, 'the next poll tells tmux the new size');
    channel.tmux(channel.block());
    poll();
    await tick();
    const resume = channel.lines[channel.lines.length - 1];
    assert.match(resume, /^refresh-client -C 90,4 ; refresh-client -A '%4:continue' ; display-message .* ; capture-pane -p -e -J -t %4 -S -100 -E -1 ; /);
    output.length = 0;
    channel.tmux(syncReplies(channel, resume, ['x', 'y', 'z', '$ '], stateLine({ history_size: '0', pane_width: '90', pane_height: '4' })));
    await tick();
    assert.ok(Buffer.concat(output).toString().startsWith('\x1bc'), 'RIS: a full sync');
    assert.equal(driver.flooding, false);
  });

  it('retries a failed sync and keeps the continue of a paused pane', async () => {
    const { channel, driver } = started();
    channel.tmux(`\x1bP1000p%session-changed $1 x\r\n`);
    channel.tmux(syncReplies(channel, channel.lines[0], ['', '', '']));
    await driver.started;
    channel.tmux('%pause %4\r\n');
    channel.tmux(channel.block(['parse error: syntax error'], true));
    await tick();
    assert.match(channel.lines[channel.lines.length - 1], /refresh-client -A '%4:continue' ; display-message/);
  });

  it('never leaves a paused pane paused, however often the sync fails: it backs off and keeps trying', async () => {
    const { channel, driver } = started();
    channel.tmux(`\x1bP1000p%session-changed $1 x\r\n`);
    channel.tmux(syncReplies(channel, channel.lines[0], ['', '', '']));
    await driver.started;
    channel.tmux('%pause %4\r\n');
    // Four failures in a row: three immediate retries, then a retry after a back-off.
    for (let failure = 0; failure < 4; failure++) {
      assert.match(channel.lines[channel.lines.length - 1], /refresh-client -A '%4:continue' ; display-message/, `attempt ${failure + 1} carries the continue`);
      channel.tmux(channel.block(['parse error: syntax error'], true));
      await tick();
    }
    const sentBefore = channel.lines.length;
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(channel.lines.length, sentBefore + 1, 'one retry after the back-off');
    assert.match(channel.lines[channel.lines.length - 1], /refresh-client -A '%4:continue' ; display-message/);
    driver.detach();
  });

  it('closes on %exit and reports it once', async () => {
    const { channel, driver } = started();
    const closes: (number | null)[] = [];
    driver.onClose((info) => closes.push(info.exitCode));
    channel.tmux(`\x1bP1000p%session-changed $1 x\r\n`);
    channel.tmux(syncReplies(channel, channel.lines[0], ['', '', '']));
    await driver.started;
    channel.emit('exit', 0);
    channel.tmux('%exit\r\n\x1b\\');
    assert.equal(channel.closed, true);
    assert.equal(driver.isOpen, false);
    assert.deepEqual(closes, [0]);
    driver.write('ignored');
    driver.detach();
    assert.deepEqual(closes, [0]);
  });

  it('bounds the history it writes by bytes, keeping the newest lines', async () => {
    const channel = new FakeChannel();
    const driver = new ControlDriver(channel as unknown as ClientChannel, ID, { cols: 80, rows: 3 }, { historyLines: 100, historyMaxBytes: 30, log: silentLogger });
    const output: Buffer[] = [];
    driver.onOutput((chunk) => output.push(chunk));
    channel.tmux(`\x1bP1000p%session-changed $1 x\r\n`);
    const line = channel.lines[0];
    let replies = '';
    for (const command of line.split(' ; ')) {
      if (command.startsWith('display-message')) replies += channel.block([stateLine({ history_size: '5' })]);
      else if (command.startsWith('capture-pane -p -e -J')) replies += channel.block(['old-1', 'old-2', 'newer-3', 'newer-4', 'newest-5']);
      else if (command.startsWith('capture-pane -p -e -t')) replies += channel.block(['$', '', '']);
      else replies += channel.block();
    }
    channel.tmux(replies);
    await driver.started;
    const text = Buffer.concat(output).toString();
    assert.ok(!text.includes('old-'), text);
    assert.match(text, /newer-3.*newer-4.*newest-5/s);
  });

  it('claims the window with one select-window on the first input after another client sized it', async () => {
    const { channel, driver } = started();
    channel.tmux(`\x1bP1000p%session-changed $1 x\r\n`);
    channel.tmux(syncReplies(channel, channel.lines[0], ['', '', '']));
    await driver.started;
    const claim = claimCommand(`tether_${ID}`);
    assert.equal(claim, `select-window -t =tether_${ID}:`);
    const typed = (): string[] => {
      const before = channel.lines.length;
      driver.write('a');
      const sent = channel.lines.slice(before);
      for (const line of sent) channel.tmux(line.split(' ; ').map(() => channel.block()).join(''));
      return sent;
    };
    assert.deepEqual(typed(), ["send-keys -l -t %4 -- 'a'"], 'the window is ours: no claim');
    // Another client typed: tmux gave the window its size.
    channel.tmux('%layout-change @1 b25d,60x10,0,0,4 b25d,60x10,0,0,4 *\r\n');
    const sync = channel.lines[channel.lines.length - 1];
    assert.match(sync, /^refresh-client -C 80,3 ; display-message /);
    channel.tmux(syncReplies(channel, sync, Array(10).fill(''), stateLine({ pane_width: '60', pane_height: '10' })));
    await tick();
    assert.equal(driver.claimPending, true);
    assert.deepEqual(typed(), [claim, "send-keys -l -t %4 -- 'a'"], 'first key after the switch claims');
    assert.equal(driver.claimPending, false);
    assert.deepEqual(typed(), ["send-keys -l -t %4 -- 'a'"], 'once per switch, not per key');
    // Our claim took effect: the window has our size again; a later switch claims again.
    channel.tmux('%layout-change @1 b25d,80x3,0,0,4 b25d,80x3,0,0,4 *\r\n');
    channel.tmux(syncReplies(channel, channel.lines[channel.lines.length - 1], ['', '', '']));
    await tick();
    assert.deepEqual(typed(), ["send-keys -l -t %4 -- 'a'"]);
    channel.tmux('%layout-change @1 b25d,60x10,0,0,4 b25d,60x10,0,0,4 *\r\n');
    assert.deepEqual(typed().slice(-2), [claim, "send-keys -l -t %4 -- 'a'"]);
    assert.deepEqual(layoutSize('@12 b25d,60x10,0,0,4 b25d,60x10,0,0,4 *'), { cols: 60, rows: 10 });
    assert.equal(layoutSize('@12 nonsense'), undefined);
  });

  it('fails to start with what tmux printed when it cannot attach', async () => {
    const { channel, driver } = started();
    channel.tmux(`can't find session: =tether_${ID}\r\n`);
    channel.close();
    await assert.rejects(driver.started, (error: unknown) => ControlError.is(error) && /closed before control mode started: can't find session/.test(error.message));
  });

  it('detach() closes the channel without detach-client (tmux < 3.7 can crash on concurrent ones)', async () => {
    const { channel, driver } = started();
    channel.tmux(`\x1bP1000p%session-changed $1 x\r\n`);
    channel.tmux(syncReplies(channel, channel.lines[0], ['', '', '']));
    await driver.started;
    let closed = 0;
    driver.onClose(() => closed++);
    const linesBefore = channel.lines.length;
    driver.detach();
    assert.equal(channel.lines.length, linesBefore, 'nothing more is written to tmux');
    assert.ok(!channel.lines.includes('detach-client'));
    assert.equal(channel.closed, true);
    assert.equal(closed, 1);
  });
});
