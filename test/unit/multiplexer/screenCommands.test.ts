import { strict as assert } from 'node:assert';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseKillOutput, parseStatusOutput } from '../../../src/multiplexer/multiplexer';
import { MAX_REMOTE_COMMAND_BYTES, shellQuote, wrapScript } from '../../../src/common/quoting';
import { InvalidSessionIdError, newSessionId } from '../../../src/common/sessionId';
import { ScreenScripts } from '../../../src/multiplexer/screenCommands';
import { parseSessionLines } from '../../../src/multiplexer/tmuxCommands';

const HOSTILE_CWD = `/tmp/$(touch CANARY) \`touch CANARY\`; rm -rf ~ 'single' "double" \\ \n* ~x`;
const SHELLS = ['/bin/sh', '/bin/bash', '/bin/dash'].filter((s) => fs.existsSync(s));

describe('screenCommands', () => {
  const scripts = new ScreenScripts();

  describe('scripts', () => {
    const id = newSessionId();
    const all: Record<string, string> = {
      create: scripts.create({ id, cwd: '~/src', cols: 120, rows: 40, historyLimit: 50_000 }),
      createNoCwd: scripts.create({ id, cols: 80, rows: 24, historyLimit: 1000 }),
      createHostile: scripts.create({ id, cwd: HOSTILE_CWD, cols: 80, rows: 24, historyLimit: 1000 }),
      attach: scripts.attach(id),
      status: scripts.status(id),
      kill: scripts.kill(id, 0, 'tether-sentinel-0123'),
      capture: scripts.capture(id, 2000),
      currentDirectories: scripts.currentDirectories([id]),
      listSessions: scripts.listSessions(),
    };

    it('produces syntactically valid sh for every script (sh -n, bash -n, dash -n)', () => {
      for (const [name, script] of Object.entries(all)) {
        for (const shell of SHELLS) {
          const result = spawnSync(shell, ['-n', '-c', script], { encoding: 'utf8' });
          assert.equal(result.status, 0, `${name} under ${shell}: ${result.stderr}\n${script}`);
        }
      }
    });

    it('always uses the private SCREENDIR with mode 700', () => {
      for (const [name, script] of Object.entries(all)) {
        const lines = script.split('\n');
        assert.equal(lines[0], 'SCREENDIR="$HOME/.tether/screen"; export SCREENDIR', name);
        assert.equal(lines[1], 'mkdir -p "$SCREENDIR" && chmod 700 "$SCREENDIR"', name);
      }
    });

    it('names the session tether_<id> and joins with screen -x, never creating on attach', () => {
      assert.ok(all.create.includes(`screen -U -dmS tether_${id} -h 50000 `));
      assert.ok(all.create.includes(`tether ${id} || exit 1`));
      assert.ok(all.create.endsWith('echo created'));
      assert.ok(all.create.includes(`screen -S tether_${id} -X escape ''`));
      assert.ok(all.attach.includes(`exec screen -U -x tether_${id}`));
      assert.ok(all.attach.includes('unset STY WINDOW'));
      assert.ok(!/-dm|-R|-D/.test(all.attach));
      assert.ok(all.capture.includes(`screen -S tether_${id} -X hardcopy -h "$f"`));
      assert.ok(all.capture.includes('tail -n 2000'));
      assert.ok(all.status.includes(`grep '[0-9]\\.tether_${id}[[:space:]]'`));
      assert.ok(all.kill.includes(`if [ -z "$line" ]; then rm -f "$HOME/.tether/screen-meta/tether_${id}"; echo tether-sentinel-0123; exit 0; fi`));
      assert.ok(all.kill.trimEnd().endsWith('echo "in-use 1"'));
    });

    it('clamps history and line counts', () => {
      assert.ok(scripts.create({ id, cols: 80, rows: 24, historyLimit: 1e12 }).includes('-h 1000000 '));
      assert.ok(scripts.create({ id, cols: 80, rows: 24, historyLimit: NaN }).includes('-h 100 '));
      assert.ok(scripts.capture(id, -4).includes('tail -n 0'));
    });

    it('only ever puts a hostile cwd into the script shell-quoted', () => {
      for (const cwd of [HOSTILE_CWD, `'; touch CANARY; '`, '$(touch CANARY)', '~/$(touch CANARY)']) {
        const script = scripts.create({ id, cwd, cols: 80, rows: 24, historyLimit: 1000 });
        assert.ok(script.includes(`\ndir=${shellQuote(cwd)}\n`));
        assert.ok(!script.replace(`dir=${shellQuote(cwd)}`, 'dir=X').includes(cwd));
      }
    });

    it('throws on invalid IDs', () => {
      const good = newSessionId();
      for (const bad of ['', 'abc', good.toUpperCase(), `${good};x`, `${good}\n`]) {
        assert.throws(() => scripts.create({ id: bad, cols: 80, rows: 24, historyLimit: 1000 }), InvalidSessionIdError);
        assert.throws(() => scripts.attach(bad), InvalidSessionIdError);
        assert.throws(() => scripts.status(bad), InvalidSessionIdError);
        assert.throws(() => scripts.kill(bad, 0, 's'), InvalidSessionIdError);
        assert.throws(() => scripts.capture(bad, 10), InvalidSessionIdError);
        assert.throws(() => scripts.currentDirectories([good, bad]), InvalidSessionIdError);
      }
    });

    it('fits every wrapped script under the remote payload limit', () => {
      for (const [name, script] of Object.entries(all)) {
        assert.ok(Buffer.byteLength(wrapScript(`echo __tether_0123456789abcdef__\n${script}`)) <= MAX_REMOTE_COMMAND_BYTES, name);
      }
    });
  });

  describe('against a real GNU screen with a private HOME', function () {
    this.timeout(60_000);
    // SCREENDIR is derived from $HOME, so a temp HOME gives a private socket directory.
    let root: string;
    let env: NodeJS.ProcessEnv;
    const clients: ChildProcess[] = [];

    function run(script: string): { stdout: string; stderr: string; status: number | null } {
      const result = spawnSync('/bin/sh', ['-c', wrapScript(script)], { env, cwd: env.HOME, encoding: 'utf8', timeout: 15_000 });
      assert.equal(result.error, undefined);
      return { stdout: result.stdout, stderr: result.stderr, status: result.status };
    }

    function screen(args: string[]): string {
      return spawnSync('screen', args, { env: { ...env, SCREENDIR: path.join(env.HOME!, '.tether', 'screen') }, encoding: 'utf8' }).stdout;
    }

    async function waitFor(what: string, check: () => boolean): Promise<void> {
      for (let i = 0; i < 200; i++) {
        if (check()) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.fail(`timed out waiting for ${what}`);
    }

    function create(id: string, cwd?: string): void {
      const result = run(scripts.create({ id, cwd, cols: 100, rows: 30, historyLimit: 3000 }));
      assert.equal(result.stdout, 'created\n', result.stderr);
    }

    before(function () {
      if (spawnSync('screen', ['-v']).error || spawnSync('script', ['--version']).error) this.skip();
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-screen-'));
      env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, SHELL: '/bin/bash', TERM: 'xterm-256color', LANG: 'C.UTF-8', HISTFILE: '/dev/null' };
    });

    after(async () => {
      for (const child of clients) if (child.exitCode === null && child.pid) child.kill('SIGKILL');
      if (!root) return;
      for (const id of parseSessionLines(run(scripts.listSessions()).stdout).keys()) screen(['-S', `tether_${id}`, '-X', 'quit']);
      await new Promise((resolve) => setTimeout(resolve, 200));
      fs.rmSync(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    });

    it('creates a detached session in a private SCREENDIR', async () => {
      const id = newSessionId();
      const dir = path.join(root, `it's a "dir" $(touch CANARY)`);
      fs.mkdirSync(dir);
      create(id, dir);
      const screendir = path.join(root, '.tether', 'screen');
      assert.equal(fs.statSync(screendir).mode & 0o777, 0o700);
      assert.deepEqual(parseStatusOutput(run(scripts.status(id)).stdout), { state: 'alive' });
      assert.equal(parseSessionLines(run(scripts.listSessions()).stdout).get(id), 'Detached');
      assert.ok(!fs.existsSync(path.join(root, 'CANARY')));
      if (spawnSync('pgrep', ['-V']).error === undefined && fs.existsSync('/proc/self/cwd')) {
        await waitFor('cwd', () => parseSessionLines(run(scripts.currentDirectories([id])).stdout).get(id) === dir);
      }
    });

    it('captures scrollback with trailing blank rows removed', async () => {
      const id = newSessionId();
      create(id);
      // screen expands ${…} in -X arguments itself, so the marker avoids $: the output line
      // "capturemarker" differs from the echoed command line.
      screen(['-S', `tether_${id}`, '-X', 'stuff', 'echo capture""marker\n']);
      await waitFor('captured output', () => run(scripts.capture(id, 100)).stdout.includes('\ncapturemarker\n'));
      const captured = run(scripts.capture(id, 100)).stdout;
      assert.ok(!/\n[ \t]*\n$/.test(captured), JSON.stringify(captured.slice(-40)));
      assert.ok(captured.split('\n').length <= 101);
    });

    it('reports exited <status> when the user exits the shell', async () => {
      const id = newSessionId();
      create(id);
      screen(['-S', `tether_${id}`, '-X', 'stuff', 'exit 7\n']);
      await waitFor('exit', () => parseStatusOutput(run(scripts.status(id)).stdout).state !== 'alive');
      assert.deepEqual(parseStatusOutput(run(scripts.status(id)).stdout), { state: 'exited', exitCode: 7 });
    });

    it('kills a detached session, echoes the sentinel, then reports gone', () => {
      const id = newSessionId();
      create(id);
      const sentinel = `tether-kill-${newSessionId()}`;
      assert.deepEqual(parseKillOutput(run(scripts.kill(id, 0, sentinel)).stdout, sentinel), { killed: true });
      assert.equal(run(scripts.status(id)).stdout, 'gone\n');
      assert.deepEqual(parseKillOutput(run(scripts.kill(id, 0, sentinel)).stdout, sentinel), { killed: true });
    });

    it('refuses to kill a session that another display has attached', async () => {
      const id = newSessionId();
      create(id);
      const client = spawn('script', ['-q', '-f', '-c', `sh -c ${shellQuote(scripts.attach(id))}`, '/dev/null'], { env, stdio: ['pipe', 'ignore', 'ignore'] });
      clients.push(client);
      await waitFor('display to attach', () => parseSessionLines(run(scripts.listSessions()).stdout).get(id) === 'Attached');
      const sentinel = `tether-kill-${newSessionId()}`;
      const refused = run(scripts.kill(id, 0, sentinel)).stdout;
      assert.deepEqual(parseKillOutput(refused, sentinel), { killed: false, reason: 'in-use', clients: 1 });
      assert.deepEqual(parseStatusOutput(run(scripts.status(id)).stdout), { state: 'alive' });
      // Once that display is gone, the kill goes through (retried: see the skipped test below).
      client.kill('SIGKILL');
      await waitFor('display to leave', () => parseSessionLines(run(scripts.listSessions()).stdout).get(id) === 'Detached');
      await waitFor('kill to be confirmed', () => parseKillOutput(run(scripts.kill(id, 0, sentinel)).stdout, sentinel).killed);
      assert.equal(run(scripts.status(id)).stdout, 'gone\n');
    });

    // BUG (reported, not fixed here): right after a display detaches, `screen -X quit` can take
    // about a second to remove the session, but kill() re-checks after a fixed `sleep 0.2` and
    // then prints "in-use 1" although it did kill the session. The session disappears moments
    // later, with no sentinel and so no tombstone.
    it('confirms a kill right after the last display detached', async () => {
      for (let i = 0; i < 5; i++) {
        const id = newSessionId();
        create(id);
        const client = spawn('script', ['-q', '-f', '-c', `sh -c ${shellQuote(scripts.attach(id))}`, '/dev/null'], { env, stdio: ['pipe', 'ignore', 'ignore'] });
        clients.push(client);
        await waitFor('display to attach', () => parseSessionLines(run(scripts.listSessions()).stdout).get(id) === 'Attached');
        client.kill('SIGKILL');
        await waitFor('display to leave', () => parseSessionLines(run(scripts.listSessions()).stdout).get(id) === 'Detached');
        assert.deepEqual(parseKillOutput(run(scripts.kill(id, 0, 'sentinel')).stdout, 'sentinel'), { killed: true }, `attempt ${i}`);
      }
    });

    it('does not list or match sessions that are not ours', () => {
      const id = newSessionId();
      create(id);
      // A neighbour whose name starts with ours, in the same SCREENDIR.
      screen(['-dmS', `tether_${id}x`, 'sleep', '60']);
      const listed = parseSessionLines(run(scripts.listSessions()).stdout);
      assert.ok(listed.has(id));
      assert.ok(![...listed.keys()].some((key) => key !== id && key.startsWith(id)));
      const sentinel = 'tether-kill-neighbour';
      assert.deepEqual(parseKillOutput(run(scripts.kill(id, 0, sentinel)).stdout, sentinel), { killed: true });
      assert.ok(screen(['-ls']).includes(`tether_${id}x`));
      screen(['-S', `tether_${id}x`, '-X', 'quit']);
    });
  });
});
