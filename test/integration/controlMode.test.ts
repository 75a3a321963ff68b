/**
 * The control-mode driver against a real sshd and tmux: the bytes the driver produces are fed into
 * @xterm/headless, and the emulator's buffer is compared with what tmux itself holds for the pane.
 */
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Terminal } from '@xterm/headless';
import { ControlDriver, openControlDriver } from '../../src/session/controlDriver';
import { newSessionId, sessionName } from '../../src/common/sessionId';
import { ConnectionPool, SshConnection } from '../../src/ssh/sshConnection';
import { TmuxScripts } from '../../src/multiplexer/tmuxCommands';
import type { TerminalSize } from '../../src/session/sessionDriver';
import { SshHost } from '../support/sshHost';
import { eventually, sleep, testLog, testPool } from './fixtures/sessionHarness';

/** A headless terminal fed by a driver, as the Pseudoterminal would feed VS Code's xterm. */
class Mirror {
  readonly terminal: Terminal;
  private last: Promise<void> = Promise.resolve();
  bytes = 0;
  closed: number | null | undefined;

  constructor(readonly driver: ControlDriver, size: TerminalSize, scrollback = 100_000) {
    this.terminal = new Terminal({ cols: size.cols, rows: size.rows, allowProposedApi: true, scrollback });
    driver.onOutput((chunk) => {
      this.bytes += chunk.length;
      this.last = new Promise<void>((resolve) => this.terminal.write(chunk, resolve));
    });
    driver.onClose((info) => (this.closed = info.exitCode));
  }

  async settled(): Promise<void> {
    let seen: Promise<void> | undefined;
    while (seen !== this.last) {
      seen = this.last;
      await seen;
    }
  }

  resize(size: TerminalSize): void {
    this.terminal.resize(size.cols, size.rows);
    this.driver.resize(size);
  }

  viewport(): string[] {
    const buffer = this.terminal.buffer.active;
    return Array.from({ length: this.terminal.rows }, (_, i) => buffer.getLine(buffer.baseY + i)!.translateToString(true));
  }

  /** Scrollback as logical lines (wrapped rows joined), the way `capture-pane -J` reports history. */
  scrollback(): string[] {
    const buffer = this.terminal.buffer.normal;
    const lines: string[] = [];
    for (let i = 0; i < buffer.baseY; i++) {
      const line = buffer.getLine(i)!;
      const text = line.translateToString(true);
      if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += text;
      else lines.push(text);
    }
    return lines.map((line) => line.replace(/\s+$/, ''));
  }
}

describe('tmux control-mode driver against a real sshd', function () {
  let host: SshHost;
  let pool: ConnectionPool;
  let connection: SshConnection;
  const drivers: ControlDriver[] = [];
  const size: TerminalSize = { cols: 90, rows: 24 };

  before(async function () {
    this.timeout(30_000);
    host = await SshHost.start({ user: 'tethercm' });
  });

  beforeEach(async () => {
    pool = testPool();
    connection = await pool.acquire(host.resolved());
  });

  afterEach(() => {
    for (const driver of drivers.splice(0)) driver.detach();
    pool.dispose();
    host.reboot();
  });

  after(async () => {
    await host?.dispose();
  });

  async function createSession(cols = size.cols, rows = size.rows, historyLimit = 5000): Promise<string> {
    const id = newSessionId();
    const script = new TmuxScripts({ major: 3, minor: 3, suffix: 'a' }).create({ id, cols, rows, historyLimit, cwd: '/tmp' });
    const result = await connection.runScript(script);
    assert.match(result.output, /^created$/m);
    return id;
  }

  async function attach(id: string, at: TerminalSize = size, historyLines = 2000, pauseAfterSeconds?: number): Promise<Mirror> {
    const driver = await openControlDriver(connection, id, at, { historyLines, log: testLog, pauseAfterSeconds });
    drivers.push(driver);
    return new Mirror(driver, at);
  }

  const target = (id: string): string => `-t '=${sessionName(id)}:'`;

  function hostScreen(id: string): string[] {
    const out = host.tmux(`capture-pane -p ${target(id)}`);
    return out.replace(/\n$/, '').split('\n').map((line) => line.replace(/\s+$/, ''));
  }

  function hostState(id: string): { x: number; y: number; alternate: boolean; history: number; width: number; height: number } {
    const [x, y, alternate, history, width, height] = host.tmux(`display -p ${target(id)} '#{cursor_x} #{cursor_y} #{alternate_on} #{history_size} #{pane_width} #{pane_height}'`).trim().split(' ').map(Number);
    return { x, y, alternate: alternate === 1, history, width, height };
  }

  /** Waits until the emulator shows exactly what tmux holds: screen, cursor, buffer kind. */
  async function sameAsHost(mirror: Mirror, id: string, what: string, timeoutMs = 20_000): Promise<void> {
    let last = '';
    try {
      await eventually(() => {
        const state = hostState(id);
        const mine = mirror.viewport().map((line) => line.replace(/\s+$/, ''));
        const theirs = hostScreen(id);
        const buffer = mirror.terminal.buffer.active;
        last = JSON.stringify({ mine, theirs, cursor: [buffer.cursorX, buffer.cursorY], host: state, type: buffer.type });
        return JSON.stringify(mine) === JSON.stringify(theirs) && buffer.cursorX === state.x && buffer.cursorY === state.y && (buffer.type === 'alternate') === state.alternate;
      }, timeoutMs, what);
    } catch (error) {
      const name = sessionName(id);
      let clients = '';
      try {
        clients = host.tmux(`list-clients -t '=${name}' -F '#{client_name} #{client_flags} #{client_control_mode}'`).trim();
      } catch (listError) {
        clients = `list-clients failed: ${(listError as Error).message}`;
      }
      const logTail = testLog.lines.filter((line) => line.includes(name)).slice(-12).join('\n');
      // Where the host's processes wait: a tmux client blocked in pipe_write means our side stopped reading.
      const processes = spawnSync('ps', ['-o', 'pid,stat,wchan:24,args', '-u', host.user], { encoding: 'utf8' }).stdout;
      throw new Error(`${(error as Error).message}: ${last}\nclients on the host: ${clients}\nprocesses:\n${processes}\nlog:\n${logTail}`);
    }
    await mirror.settled();
  }

  async function waitForText(mirror: Mirror, pattern: RegExp, timeoutMs = 20_000): Promise<void> {
    try {
      await eventually(() => pattern.test(mirror.viewport().join('\n')), timeoutMs, String(pattern));
    } catch (error) {
      const name = sessionName(mirror.driver.id);
      const logTail = testLog.lines.filter((line) => line.includes(name)).slice(-12).join('\n');
      throw new Error(`${(error as Error).message}; on screen: ${JSON.stringify(mirror.viewport().slice(-6))}\nlog:\n${logTail}`);
    }
  }

  it('rebuilds screen, cursor and scrollback on attach, and forwards input and output', async () => {
    const id = await createSession();
    host.tmux(`send-keys ${target(id)} 'for i in $(seq 1 150); do echo "before-attach-$i $(printf %0120d 0)"; done' Enter`);
    await eventually(() => hostScreen(id).some((line) => line.startsWith('before-attach-150')), 10_000, 'output on the host');
    const mirror = await attach(id);
    await sameAsHost(mirror, id, 'screen after attach');
    // History went into the terminal's real scrollback, as logical lines like tmux's.
    const history = host.tmux(`capture-pane -p -J ${target(id)} -S -2000 -E -1`).replace(/\n$/, '').split('\n').map((line) => line.replace(/\s+$/, ''));
    assert.ok(hostState(id).history > 100);
    assert.deepEqual(mirror.scrollback(), history);
    mirror.driver.write('echo "typed $((6*7)) é"\r');
    await waitForText(mirror, /^typed 42 é$/m);
    await sameAsHost(mirror, id, 'screen after typing');
  });

  it("takes the pane's tab stops on attach: a tab after the sync lands where tmux puts it", async () => {
    const id = await createSession();
    // Clear every tab stop and set one at column 5 (HTS); the tab is printed only after the attach
    // has synced, when our Enter ends the `read`.
    host.tmux(`send-keys ${target(id)} "clear; printf '\\033[3g\\033[6G\\033H\\r'; read x; printf 'a\\tb\\n'" Enter`);
    await eventually(() => host.tmux(`display -p ${target(id)} '#{pane_tabs}'`).trim() === '5', 10_000, 'the tab stop set on the host');
    const mirror = await attach(id);
    await sameAsHost(mirror, id, 'screen after attach');
    mirror.driver.write('\r');
    await waitForText(mirror, /^a    b$/m);
    await sameAsHost(mirror, id, 'screen after the tab');
  });

  it('puts lines printed while no client was attached into the scrollback of the next attach', async () => {
    const id = await createSession();
    const first = await attach(id);
    await sameAsHost(first, id, 'first attach');
    first.driver.detach();
    await eventually(() => first.closed !== undefined, 10_000, 'first driver closed');
    await eventually(() => host.tmux(`list-clients ${target(id)}`).trim() === '', 10_000, 'no client attached');
    host.tmux(`send-keys ${target(id)} 'seq -f "offline-%g" 1 300' Enter`);
    await eventually(() => hostScreen(id).some((line) => line === 'offline-300'), 10_000, 'offline output');
    const second = await attach(id);
    await sameAsHost(second, id, 'screen after re-attach');
    const all = [...second.scrollback(), ...second.viewport()].join('\n');
    const offline = all.split('\n').filter((line) => /^offline-\d+$/.test(line));
    assert.deepEqual(offline, Array.from({ length: 300 }, (_, i) => `offline-${i + 1}`));
    assert.ok(second.terminal.buffer.normal.baseY >= 300 - size.rows);
  });

  it('shows the same full-screen program after a reconnect, then the shell again when it exits', async () => {
    const id = await createSession();
    const first = await attach(id);
    await sameAsHost(first, id, 'shell');
    first.driver.write('seq 1 40; printf "line %s\\n" one two three > /tmp/cm-file-$$; vim -u NONE -N -c "set nu" /tmp/cm-file-$$\r');
    await eventually(() => hostState(id).alternate && hostScreen(id).some((line) => /3 line three/.test(line)), 15_000, 'vim on the host');
    await sameAsHost(first, id, 'vim in the first client');
    first.driver.write('jjA-edited\x1b');
    await eventually(() => hostScreen(id).some((line) => /three-edited/.test(line)), 10_000, 'edit on the host');
    first.driver.detach();
    await eventually(() => first.closed !== undefined, 10_000, 'first driver closed');

    const second = await attach(id);
    await sameAsHost(second, id, 'vim after reconnect');
    assert.equal(second.terminal.buffer.active.type, 'alternate');
    assert.ok(second.viewport().some((line) => /3 line three-edited/.test(line)));
    second.driver.write(':q!\r');
    await eventually(() => !hostState(id).alternate, 10_000, 'vim gone on the host');
    await sameAsHost(second, id, 'shell after vim, from the saved normal screen');
    assert.equal(second.terminal.buffer.active.type, 'normal');
    assert.ok(second.viewport().some((line) => line === '40'));
  });

  it('delivers a 1 MB paste intact', async function () {
    this.timeout(120_000);
    const id = await createSession();
    const mirror = await attach(id);
    await sameAsHost(mirror, id, 'shell');
    const file = `/tmp/cm-paste-${id}`;
    mirror.driver.write(`stty -echo; cat > ${file}; stty echo; echo "paste-done"\r`);
    await sleep(300);
    // Short lines: a canonical-mode tty keeps at most 4095 bytes of one line.
    const tricky = "it's café ; #{pane_id} $HOME ~ \\ \"quoted\" 你好 -- -x %1\n".repeat(200);
    const payload = tricky + (randomBytes(768 * 1024).toString('base64').match(/.{1,76}/g) ?? []).join('\n') + '\n';
    assert.ok(payload.length >= 1024 * 1024);
    mirror.driver.write(payload);
    mirror.driver.write('\x04');
    await waitForText(mirror, /^paste-done$/m);
    const sum = host.run(`sha256sum ${file} | cut -d' ' -f1`).trim();
    assert.equal(sum, createHash('sha256').update(payload).digest('hex'));
    host.run(`rm -f ${file}`);
  });

  it('follows a resize: the pane takes the new size and the screen matches', async () => {
    const id = await createSession();
    const mirror = await attach(id);
    mirror.driver.write('seq 1 100\r');
    await waitForText(mirror, /^100$/m);
    await sameAsHost(mirror, id, 'before resize');
    const smaller = { cols: 50, rows: 12 };
    mirror.resize(smaller);
    await eventually(() => hostState(id).width === 50 && hostState(id).height === 12, 10_000, 'pane resized on the host');
    await sameAsHost(mirror, id, 'after shrinking');
    mirror.driver.write(`printf '%0120d\\n' 7\r`);
    await waitForText(mirror, /0{40}/);
    await sameAsHost(mirror, id, 'long line at the new width');
    const larger = { cols: 120, rows: 40 };
    mirror.resize(larger);
    await eventually(() => hostState(id).width === 120 && hostState(id).height === 40, 10_000, 'pane grown on the host');
    await sameAsHost(mirror, id, 'after growing');
  });

  it('mirrors two control clients of one session', async () => {
    const id = await createSession();
    const a = await attach(id);
    const b = await attach(id);
    await eventually(() => host.tmux(`list-clients ${target(id)}`).trim().split('\n').length === 2, 10_000, 'two clients');
    a.driver.write('echo "from-$((1+1))-a"\r');
    await waitForText(b, /^from-2-a$/m);
    b.driver.write('echo "from-$((2+1))-b"\r');
    await waitForText(a, /^from-3-b$/m);
    await sameAsHost(a, id, 'client a');
    await sameAsHost(b, id, 'client b');
    assert.deepEqual(a.viewport(), b.viewport());
  });

  it('rebuilds the screen when another client of another size takes the window, and when it leaves', async () => {
    const id = await createSession();
    const a = await attach(id);
    a.driver.write('seq 1 60\r');
    await waitForText(a, /^60$/m);
    await sameAsHost(a, id, 'a alone');
    const small = { cols: 60, rows: 14 };
    const b = await attach(id, small);
    await eventually(() => hostState(id).width === 60 && hostState(id).height === 14, 10_000, 'window follows the latest client');
    await sameAsHost(b, id, 'b');
    // a's terminal is larger than the pane now: its top rows show the pane exactly.
    await eventually(() => JSON.stringify(a.viewport().slice(0, 14).map((line) => line.replace(/\s+$/, ''))) === JSON.stringify(hostScreen(id)), 10_000, 'a shows the smaller pane');
    b.driver.detach();
    await eventually(() => hostState(id).width === size.cols && hostState(id).height === size.rows, 10_000, 'window back to a');
    await sameAsHost(a, id, 'a alone again');
  });

  it('gives the window to whichever of two control clients types, at its size (window-size latest)', async () => {
    const id = await createSession();
    const a = await attach(id);
    const small = { cols: 60, rows: 14 };
    const b = await attach(id, small);
    const windowIs = (at: TerminalSize, what: string): Promise<void> =>
      eventually(() => hostState(id).width === at.cols && hostState(id).height === at.rows, 10_000, what);
    await windowIs(small, 'the window follows the client that attached last');
    for (const [mirror, at, who] of [[a, size, 'a'], [b, small, 'b'], [a, size, 'a again']] as const) {
      // tmux tells a control client about another client's size a moment after it happens.
      await eventually(() => mirror.driver.claimPending, 10_000, `${who} hears that the window is not at its size`);
      mirror.driver.write(`echo typed-by-${who.replace(' ', '-')}\r`);
      await windowIs(at, `the window takes the size of ${who}, who typed`);
      await waitForText(mirror, new RegExp(`^typed-by-${who.replace(' ', '-')}$`, 'm'));
      await sameAsHost(mirror, id, `${who} after typing`);
    }
  });

  it('moves the window between an attach client and a control client of other sizes as each types', async () => {
    const id = await createSession();
    const control = await attach(id);
    const other = { cols: 70, rows: 20 };
    const channel = await connection.openTerminal(`unset TMUX; exec tmux -u -L tether attach-session -t '=${sessionName(id)}'`, { term: 'xterm-256color', cols: other.cols, rows: other.rows, width: 0, height: 0, modes: {} });
    channel.on('data', () => undefined);
    try {
      const windowIs = (at: TerminalSize, what: string): Promise<void> =>
        eventually(() => hostState(id).width === at.cols && hostState(id).height === at.rows, 10_000, what);
      await windowIs(other, 'the attach client attached last');
      // tmux tells a control client about another client's size a moment after it happens.
      await eventually(() => control.driver.claimPending, 10_000, 'the control client hears of the attach');
      control.driver.write('echo from-control-1\r');
      await windowIs(size, 'the control client typed');
      await sameAsHost(control, id, 'control after typing');
      channel.write('echo from-attach\r');
      await windowIs(other, 'the attach client typed');
      await eventually(() => control.driver.claimPending, 10_000, 'the control client hears that the attach client typed');
      control.driver.write('echo from-control-2\r');
      await windowIs(size, 'the control client typed again');
      await waitForText(control, /^from-control-2$/m);
      await sameAsHost(control, id, 'control after typing again');
    } finally {
      channel.close();
    }
  });

  it('resumes and re-syncs a pane that tmux paused for our client', async () => {
    const id = await createSession();
    const mirror = await attach(id);
    await sameAsHost(mirror, id, 'shell');
    const pane = mirror.driver.pane!;
    const client = host.tmux(`list-clients ${target(id)} -F '#{client_name}'`).trim();
    assert.match(client, /^\/dev\/pts\/\d+$/);
    // What tmux does to a client that falls pause-after seconds behind, made to happen now.
    host.tmux(`refresh-client -t ${client} -A '${pane}:pause'`);
    host.tmux(`send-keys ${target(id)} 'seq -f "while-paused-%g" 1 50' Enter`);
    await eventually(() => hostScreen(id).some((line) => line === 'while-paused-50'), 10_000, 'output on the host');
    await sameAsHost(mirror, id, 'screen after the pause');
    assert.ok(testLog.lines.some((line) => line.includes(`${sessionName(id)}: output paused by tmux`)));
  });

  it('shows a flood at display rate, then appends every line of it to the scrollback (seq 1 2000000)', async function () {
    this.timeout(600_000);
    const narrow: TerminalSize = { cols: 12, rows: 10 };
    // tmux keeps all 2,000,000 lines (and stays short of trimming), and so does the emulator.
    const id = await createSession(narrow.cols, narrow.rows, 2_400_000);
    const driver = await openControlDriver(connection, id, narrow, { historyLines: 2_400_000, historyMaxBytes: 64 * 1024 * 1024, log: testLog });
    drivers.push(driver);
    const mirror = new Mirror(driver, narrow, 2_400_000);
    await sameAsHost(mirror, id, 'shell');
    const paints: number[] = [];
    driver.onOutput(() => {
      if (driver.flooding) paints.push(performance.now());
    });
    driver.write('seq 1 2000000; echo seq-done\r');
    await eventually(() => driver.flooding, 30_000, 'the flood path took over');
    await eventually(() => !driver.flooding, 300_000, 'the flood ended');
    await waitForText(mirror, /^seq-done$/m, 120_000);
    await sameAsHost(mirror, id, 'screen after the flood');
    const name = sessionName(id);
    assert.ok(testLog.lines.some((line) => line.includes(`${name}: flood over;`) && line.includes("history rows appended")), `the flood ended with an append, not a full sync:\n${testLog.lines.filter((line) => line.includes(name)).join("\n")}`);
    // Every line, once, in order: the scrollback and screen read as tmux's history and screen.
    const all = [...mirror.scrollback(), ...mirror.viewport().map((line) => line.replace(/\s+$/, ''))];
    const first = all.indexOf('1');
    assert.ok(first >= 0, 'line 1 is in the scrollback');
    const numbers = all.slice(first, first + 2_000_000);
    for (let i = 0; i < 2_000_000; i++) {
      if (numbers[i] !== String(i + 1)) assert.fail(`line ${i + 1} reads ${JSON.stringify(numbers[i])} (around it: ${JSON.stringify(numbers.slice(Math.max(0, i - 3), i + 3))})`);
    }
    assert.equal(all[first + 2_000_000], 'seq-done');
    // The screen was painted while paused: at display rate, not once per line.
    assert.ok(paints.length > 0 && paints.length < 2_000, `${paints.length} paints`);
  });

  // Our channel paused (VS Code not reading): tmux pauses the pane for us after 1 s, we resync
  // on resume, and the flood path takes what is still coming (issue 17).
  it('catches up after a flood while our channel was paused, and ends when the session is killed', async function () {
    this.timeout(330_000);
    const id = await createSession();
    const mirror = await attach(id, size, 200, 1);
    await sameAsHost(mirror, id, 'shell');
    mirror.driver.pause();
    mirror.driver.write('seq -f "flood-%g" 1 300000; echo flood-finished\r');
    // Nobody reads our channel while the flood runs: tmux holds the pane back or pauses it.
    await eventually(() => hostState(id).history > 1000, 30_000, 'the flood started on the host');
    await sleep(2500);
    mirror.driver.resume();
    await eventually(() => hostScreen(id).some((line) => line === 'flood-finished'), 60_000, 'flood done on the host').catch((error: Error) => {
      const logTail = testLog.lines.filter((line) => line.includes(sessionName(id))).slice(-12).join('\n');
      throw new Error(`${error.message}; host: ${JSON.stringify(hostScreen(id).slice(-3))}, ours: ${JSON.stringify(mirror.viewport().slice(-3))}\nlog:\n${logTail}`);
    });
    // The bound is for a loaded 2-core machine; the check stays exact.
    await sameAsHost(mirror, id, 'screen after the flood', 180_000);
    mirror.driver.write('echo after-flood\r');
    await waitForText(mirror, /^after-flood$/m);
    // Our control client counts as one attached client: the lead's kill runs with N = 1.
    const killed = await connection.runScript(new TmuxScripts({ major: 3, minor: 3, suffix: 'a' }).kill(id, 1, 'cm-killed-sentinel'));
    assert.match(killed.output, /^cm-killed-sentinel$/m);
    await eventually(() => mirror.closed !== undefined, 10_000, 'driver closed after the kill');
    assert.equal(mirror.driver.isOpen, false);
  });

  it('neither loses nor repeats output that arrives while the state sync runs', async function () {
    this.timeout(120_000);
    const id = await createSession();
    host.tmux(`send-keys ${target(id)} 'for i in $(seq 1 4000); do echo "tick-$i"; [ $((i % 20)) -eq 0 ] && sleep 0.01; done; echo ticks-done' Enter`);
    await eventually(() => hostState(id).history > 50, 10_000, 'ticks started');
    // Attach (and re-sync by resizing) while the loop prints.
    const mirror = await attach(id, size, 5000);
    mirror.resize({ cols: 80, rows: 20 });
    await waitForText(mirror, /^ticks-done$/m);
    await sameAsHost(mirror, id, 'after the ticks');
    const ticks = [...mirror.scrollback(), ...mirror.viewport()].filter((line) => /^tick-\d+$/.test(line)).map((line) => Number(line.slice(5)));
    assert.deepEqual(ticks, Array.from({ length: 4000 }, (_, i) => i + 1));
  });

  it('works with -C too, where the pty echoes our commands', async () => {
    const id = await createSession();
    const driver = await openControlDriver(connection, id, size, { historyLines: 100, log: testLog, flavour: '-C' });
    drivers.push(driver);
    const mirror = new Mirror(driver, size);
    driver.write('echo "echo-$((3*5))"\r');
    await waitForText(mirror, /^echo-15$/m);
    await sameAsHost(mirror, id, '-C client');
    assert.ok(!mirror.viewport().some((line) => line.includes('send-keys')), 'no echoed command on screen');
  });
});
