/**
 * Hostile input corpus: session IDs, working directories, host names, device names and titles with
 * `;`, `$(…)`, backticks, quotes, newlines, ANSI escapes, very long strings and invalid UTF-8,
 * arriving through another device's manifest (a real envelope, real key, PUT to the real server),
 * through ssh config text, and through user input. A canary file on the host must never appear,
 * nothing that reaches a tree view or a terminal title may carry control characters, and each
 * refused input gets a clear error.
 */
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { LIMITS, cleanDisplayString } from '../../src/sync/blob';
import { CrossDeviceSessions } from '../../src/sync/crossDevice';
import { ENVELOPE_VERSION, NONCE_BYTES, sealEnvelope } from '../../src/sync/envelope';
import { SyncClient } from '../../src/sync/syncClient';
import { SyncServerApi } from '../../src/sync/syncHttp';
import { deriveSyncKeys, generateSyncKey } from '../../src/sync/syncKey';
import { InvalidSessionIdError, assertSessionId, newSessionId } from '../../src/common/sessionId';
import { PersistentSession } from '../../src/session/persistentSession';
import { SshConfigError, parseHostTarget, resolveHost, type ResolvedHost } from '../../src/ssh/sshConfig';
import { HostSuite } from '../integration/fixtures/sessionHarness';
import { CapturingLog, SyncServer, UNSAFE_DISPLAY, report, tempDir, waitUntil } from './common';

const CANARY = `/tmp/tetherrel-canary-${process.pid}`;
const TOUCH = `touch ${CANARY}`;

export const HOSTILE: readonly string[] = [
  `; ${TOUCH}`,
  `$(${TOUCH})`,
  `\`${TOUCH}\``,
  `'; ${TOUCH}; echo '`,
  `"; ${TOUCH}; echo "`,
  `a\n${TOUCH}`,
  `a\r\n${TOUCH}\r\n`,
  `| ${TOUCH}`,
  `&& ${TOUCH} &`,
  `\${IFS}touch\${IFS}${CANARY}`,
  `-oProxyCommand=${TOUCH}`,
  `%d%n%h $(${TOUCH})`,
  '\x1b]0;pwned-title\x07text',
  '\x1b[2J\x1b[31mred\x1b[0m',
  '\x1bP+q\x1b\\dcs',
  '\x9b31mC1-csi',
  'bidi \u202eevil\u202c',
  'tab\there',
  '\ud800lone-surrogate',
  '\ufffd\ufffe invalid',
  'x'.repeat(5000),
  'y'.repeat(70_000),
  'nul\0byte',
  '',
  '   ',
  '../../../../etc/passwd',
  'é ünïcödé 日本 ✓',
];

/** What a terminal would show, with Tether's own DIM/RESET removed: must hold no other control. */
function strayControls(text: string): string[] {
  const cleaned = text.replace(/\x1b\[2m|\x1b\[0m/g, '').replace(/\r\n/g, '');
  return [...cleaned].filter((ch) => UNSAFE_DISPLAY.test(ch)).map((ch) => `U+${ch.codePointAt(0)!.toString(16)}`);
}

describe('reliability: hostile input corpus', function () {
  this.timeout(600_000);
  const log = new CapturingLog();
  let canaryChecks = 0;
  const servers: SyncServer[] = [];

  const canaryAbsent = (): void => {
    canaryChecks++;
    assert.equal(existsSync(CANARY), false, `canary ${CANARY} was created: a command was injected`);
  };

  const suite = new HostSuite(
    { user: 'tetherrelh' },
    { poolPer: 'suite', pool: { log, keepaliveCountMax: 3 }, tabs: { log, preference: 'tmux', reconnect: { baseDelayMs: 100, maxDelayMs: 500, jitter: 0.2 }, probeTimeoutMs: 10_000 } },
  );

  before(() => rmSync(CANARY, { force: true }));
  after(async () => {
    for (const server of servers) await server.stop();
    rmSync(CANARY, { force: true });
  });

  it('user input: parseHostTarget, assertSessionId and a hostile cwd give clear errors and run nothing', async () => {
    let targetsRefused = 0;
    let targetsAccepted = 0;
    let idsRefused = 0;
    let unclearErrors = 0;
    let unsafeMessages = 0;
    for (const input of HOSTILE) {
      try {
        const target = parseHostTarget(input);
        targetsAccepted++;
        // Whatever is accepted is plain data: no shell syntax, no controls, no leading dash.
        assert.doesNotMatch(`${target.user ?? ''}@${target.host}`, /[\s;$`'"|&()\\<>\x00-\x1f]|^-/);
      } catch (error) {
        targetsRefused++;
        if (!SshConfigError.is(error) || !/^invalid host /.test(error.message)) unclearErrors++;
        if (UNSAFE_DISPLAY.test((error as Error).message)) unsafeMessages++;
      }
      try {
        assertSessionId(input);
      } catch (error) {
        idsRefused++;
        if (!InvalidSessionIdError.is(error) || !/expected 26 characters/.test(error.message)) unclearErrors++;
        if (UNSAFE_DISPLAY.test((error as Error).message)) unsafeMessages++;
      }
      assert.throws(() => new PersistentSession({ id: input, host: suite.host.resolved(), pool: suite.pool, log, mode: 'attach', multiplexer: 'tmux' }), InvalidSessionIdError);
    }
    // Every corpus string as a working directory for a new tab, a few at a time.
    let cwdRan = 0;
    let cwdRefusedWithMessage = 0;
    let cwdOther = 0;
    for (let i = 0; i < HOSTILE.length; i += 6) {
      const batch = HOSTILE.slice(i, i + 6).map((cwd) => ({ cwd, tab: suite.open({ cwd }) }));
      for (const { cwd, tab } of batch) {
        await tab.waitFor(() => tab.session.state === 'attached' || tab.session.state === 'ended', 20_000, 'attached or ended');
        if (tab.session.state === 'attached') {
          tab.type('echo "cwd-is:$(pwd):end"\r');
          await tab.waitFor(/cwd-is:\/[^\r\n]*:end\r?\n/, 10_000);
          cwdRan++;
          tab.session.dispose();
        } else if (/\[tether\]/.test(tab.plain)) {
          cwdRefusedWithMessage++;
        } else {
          cwdOther++;
          console.log(`      cwd ${JSON.stringify(cwd.slice(0, 40))}: ended without a message`);
        }
        if (strayControls(tab.text.split('\r\n').filter((line) => line.includes('[tether]')).join('\r\n')).length > 0) unsafeMessages++;
      }
      canaryAbsent();
    }
    suite.host.reboot();
    report({
      scenario: 'Hostile input: user input (host target, session ID, cwd)',
      iterations: HOSTILE.length,
      counts: {
        'host targets refused': targetsRefused,
        'host targets accepted (plain)': targetsAccepted,
        'session IDs refused': idsRefused,
        'cwd: shell started (cwd as data)': cwdRan,
        'cwd: refused with message': cwdRefusedWithMessage,
        'cwd: other': cwdOther,
        'unclear errors': unclearErrors,
        'messages with control chars': unsafeMessages,
        'commands injected (canary)': existsSync(CANARY) ? 1 : 0,
      },
    });
    assert.equal(idsRefused, HOSTILE.length);
    assert.equal(unclearErrors, 0);
    assert.equal(cwdOther, 0);
    // Raw C1/bidi characters in these messages are a known bug: see the skipped test below.
    canaryAbsent();
  });

  it('ssh config: hostile config text never runs a command and ends a tab with a clean message', async () => {
    const base = { homeDir: tempDir('tetherrel-home-'), localUser: suite.host.user };
    const configs: Array<{ name: string; text: string }> = [
      { name: 'HostName $(…)', text: `Host evil\n  HostName $(${TOUCH})\n  Port ${suite.host.port}\n` },
      { name: 'HostName backticks', text: `Host evil\n  HostName \`${TOUCH}\`\n` },
      { name: 'HostName ; and quotes', text: `Host evil\n  HostName "127.0.0.1; ${TOUCH}"\n  Port ${suite.host.port}\n` },
      { name: 'HostName ANSI escape', text: `Host evil\n  HostName \x1b]0;pwned\x07\x1b[31mred\n` },
      { name: 'ProxyCommand', text: `Host evil\n  HostName 127.0.0.1\n  Port ${suite.host.port}\n  ProxyCommand ${TOUCH}\n` },
      { name: 'ProxyJump hostile', text: `Host evil\n  HostName 127.0.0.1\n  ProxyJump $(${TOUCH})\n` },
      { name: 'Match exec', text: `Match exec "${TOUCH}"\n  HostName 127.0.0.2\nHost evil\n  HostName 127.0.0.1\n  Port ${suite.host.port}\n` },
      { name: 'LocalCommand', text: `Host evil\n  HostName 127.0.0.1\n  Port ${suite.host.port}\n  PermitLocalCommand yes\n  LocalCommand ${TOUCH}\n` },
      { name: 'User $(…)', text: `Host evil\n  HostName 127.0.0.1\n  Port ${suite.host.port}\n  User $(${TOUCH})\n` },
      { name: 'Include $(…)', text: `Include $(${TOUCH})\nHost evil\n  HostName 127.0.0.1\n` },
      { name: 'IdentityFile backticks', text: `Host evil\n  HostName 127.0.0.1\n  Port ${suite.host.port}\n  IdentityFile \`${TOUCH}\`\n` },
      { name: 'Port with ;', text: `Host evil\n  HostName 127.0.0.1\n  Port 22;${TOUCH}\n` },
      { name: 'very long HostName', text: `Host evil\n  HostName ${'h'.repeat(70_000)}\n` },
      { name: 'invalid UTF-8', text: `Host evil\n  HostName ${Buffer.from([0xff, 0xfe, 0x41]).toString('utf8')}\n` },
    ];
    let refusedAtResolve = 0;
    let endedWithMessage = 0;
    let unsafe = 0;
    let connected = 0;
    for (const { name, text } of configs) {
      let resolved: ResolvedHost;
      try {
        resolved = resolveHost('evil', { ...base, configText: text });
      } catch (error) {
        refusedAtResolve++;
        if (UNSAFE_DISPLAY.test((error as Error).message)) {
          unsafe++;
          console.log(`      config ${name}: message with controls: ${JSON.stringify((error as Error).message.slice(0, 200))}`);
        }
        continue;
      }
      const withKeys: ResolvedHost = { ...resolved, identityFiles: [...resolved.identityFiles, ...suite.host.resolved().identityFiles], identitiesOnly: true, knownHostsFiles: suite.host.resolved().knownHostsFiles };
      const tab = suite.open({ host: withKeys });
      await tab.waitFor(() => tab.session.state === 'ended' || tab.session.state === 'attached', 30_000, `config ${name}`);
      if (tab.session.state === 'attached') {
        connected++; // a config that resolves to the real host is fine; nothing ran locally
        tab.session.dispose();
      } else if (/\[tether\]/.test(tab.plain)) endedWithMessage++;
      const stray = strayControls(tab.text.split('\r\n').filter((line) => line.includes('[tether]')).join('\r\n'));
      if (stray.length > 0) {
        unsafe++;
        console.log(`      config ${name}: stray controls ${stray.slice(0, 5).join(' ')} in ${JSON.stringify(tab.text.slice(-200))}`);
      }
      canaryAbsent();
    }
    suite.host.reboot();
    report({
      scenario: 'Hostile input: ssh config text',
      iterations: configs.length,
      counts: { 'refused at resolve': refusedAtResolve, 'tab ended with message': endedWithMessage, 'connected (harmless)': connected, 'messages with control chars': unsafe, 'commands injected (canary)': existsSync(CANARY) ? 1 : 0 },
    });
    assert.equal(unsafe, 0);
    assert.equal(refusedAtResolve + endedWithMessage + connected, configs.length);
    canaryAbsent();
  });

  it('another device’s manifest: hostile entries are dropped or cleaned, nothing runs, display strings are clean', async () => {
    const server = await SyncServer.start({ dataDir: tempDir('tetherrel-hostile-data-') });
    servers.push(server);
    const key = generateSyncKey();
    const keys = deriveSyncKeys(key);
    const api = new SyncServerApi({ serverUrl: server.url, token: keys.token });
    const valid = (overrides: Record<string, unknown>): Record<string, unknown> => ({
      id: newSessionId(), hostLabel: 'hostile-host', user: suite.host.user, hostName: '127.0.0.1', port: suite.host.port, multiplexer: 'tmux', cwd: '/tmp', startedAt: Date.now(), title: 'ok', ...overrides,
    });
    const fields = ['id', 'hostLabel', 'user', 'hostName', 'cwd', 'title'] as const;
    const sessions = HOSTILE.flatMap((value) => fields.map((field) => valid({ [field]: value })));
    const slots: string[] = [];
    const put = async (plaintext: Record<string, unknown> & { slotId: string; seq: number }): Promise<void> => {
      await api.putBlob(plaintext.slotId, sealEnvelope(keys.encryptionKey, plaintext), undefined);
      slots.push(plaintext.slotId);
    };
    // One slot with every hostile session entry (in chunks the validator's 500-entry cap allows).
    // (In chunks that fit the server's 256 KiB blob limit.)
    const chunks: Array<Record<string, unknown>[]> = [[]];
    let chunkBytes = 0;
    for (const session of sessions) {
      const bytes = Buffer.byteLength(JSON.stringify(session));
      if (chunkBytes + bytes > 150_000 && chunks[chunks.length - 1].length > 0) {
        chunks.push([]);
        chunkBytes = 0;
      }
      chunks[chunks.length - 1].push(session);
      chunkBytes += bytes;
    }
    for (const chunk of chunks) {
      const slotId = newSessionId();
      await put({ format: 1, slotId, deviceName: 'hostile-laptop', seq: Date.now(), writtenAt: Date.now(), sessions: chunk, tombstones: [] });
    }
    // One slot per hostile device name.
    for (const deviceName of HOSTILE) {
      const slotId = newSessionId();
      await put({ format: 1, slotId, deviceName, seq: Date.now(), writtenAt: Date.now(), sessions: [valid({ title: 'named' })], tombstones: [{ id: 'x; rm -rf /', killedAt: Date.now() }] });
    }
    // Invalid UTF-8 inside the encrypted plaintext itself.
    {
      const slotId = newSessionId();
      const json = Buffer.from(JSON.stringify({ format: 1, slotId, deviceName: 'DEVNAME', seq: Date.now(), writtenAt: Date.now(), sessions: [valid({ title: 'TITLE', cwd: '/tmp/CWD' })], tombstones: [] }));
      const raw = Buffer.from(json.toString('latin1').replace('DEVNAME', 'dev\u00ff\u00fe').replace('TITLE', 'ti\u00c3\u0028').replace('/tmp/CWD', '/tmp/\u00ed\u00a0\u0080'), 'latin1');
      const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
      const box = nacl.secretbox(new Uint8Array(raw), nonce, keys.encryptionKey);
      const envelope = new Uint8Array(1 + NONCE_BYTES + box.length);
      envelope[0] = ENVELOPE_VERSION;
      envelope.set(nonce, 1);
      envelope.set(box, 1 + NONCE_BYTES);
      await api.putBlob(slotId, envelope, undefined);
      slots.push(slotId);
    }

    const receiverLog = new CapturingLog();
    const client = new SyncClient({ serverUrl: server.url, syncKey: key, slotId: newSessionId(), deviceName: 'receiver', stateDir: tempDir('tetherrel-recv-'), log: receiverLog, pollIntervalMs: 300, reconnectInitialMs: 100, reconnectMaxMs: 500 });
    const cross = new CrossDeviceSessions({ log: receiverLog });
    cross.useClient(client);
    try {
      await client.start();
      await waitUntil(() => client.state.state === 'live', 10_000, 'receiver live');
      await waitUntil(() => receiverLog.lines.some((line) => /ignored the blob|dropped \d+ malformed/.test(line)) && client.getRemoteState().slots.length > 0, 10_000, 'receiver read the slots');
      const groups = cross.liveOnOtherDevices(new Set());
      const listed = groups.flatMap((group) => group.sessions);
      let unsafeDisplay = 0;
      for (const group of groups) if (UNSAFE_DISPLAY.test(group.deviceName) || group.deviceName.length > LIMITS.deviceName) unsafeDisplay++;
      for (const session of listed) {
        // What the tree view shows (label, description, tooltip) and what a joined tab is named.
        const shown = [session.hostLabel, session.deviceName, session.title ?? '', session.cwd, session.user, session.hostName, `${session.hostLabel} · ${session.id.slice(0, 6)}`];
        if (shown.some((text) => UNSAFE_DISPLAY.test(text))) unsafeDisplay++;
        if (session.hostLabel.length > LIMITS.hostLabel || (session.title ?? '').length > LIMITS.title || session.cwd.length > LIMITS.cwd) unsafeDisplay++;
        // A value that was kept came through cleanDisplayString unchanged or was refused.
        assert.equal(cleanDisplayString(session.hostLabel, LIMITS.hostLabel), session.hostLabel);
      }
      const droppedLines = receiverLog.lines.filter((line) => /dropped \d+ malformed|ignored the blob/.test(line));
      const dropped = droppedLines.reduce((sum, line) => sum + Number(/dropped (\d+)/.exec(line)?.[1] ?? 0), 0);
      const refusedBlobs = droppedLines.filter((line) => /ignored the blob/.test(line)).length;

      // Join what is listed (attach mode): the IDs do not exist on the host, so each ends with the
      // message; then open a new tab in each listed cwd.
      let joinsEndedWithMessage = 0;
      let joinsOther = 0;
      let unsafeTerminal = 0;
      const joinable = listed.slice(0, 30);
      for (let i = 0; i < joinable.length; i += 6) {
        const batch = joinable.slice(i, i + 6).map((session) => {
          const target: ResolvedHost = { ...suite.host.resolved(), label: session.hostLabel, hostName: session.hostName, user: session.user, port: session.port };
          return suite.open({ id: session.id, host: target, mode: 'attach', multiplexer: session.multiplexer, replayLines: 100 });
        });
        for (const tab of batch) {
          await tab.waitFor(() => tab.session.state === 'ended', 30_000, 'join of a missing session ends');
          if (/no longer exists on host/.test(tab.plain)) joinsEndedWithMessage++;
          else joinsOther++;
          if (strayControls(tab.text).length > 0) unsafeTerminal++;
        }
      }
      const cwds = [...new Set(listed.map((session) => session.cwd))];
      let cwdTabs = 0;
      let cwdRefused = 0;
      for (let i = 0; i < cwds.length; i += 6) {
        const batch = cwds.slice(i, i + 6).map((cwd) => suite.open({ cwd }));
        for (const tab of batch) {
          await tab.waitFor(() => tab.session.state === 'attached' || tab.session.state === 'ended', 20_000, 'cwd tab');
          if (tab.session.state === 'attached') {
            tab.type('echo "ran-in:$(pwd):end"\r');
            await tab.waitFor(/ran-in:\/[^\r\n]*:end\r?\n/, 10_000);
            cwdTabs++;
          } else if (/\[tether\]/.test(tab.plain)) {
            cwdRefused++;
          }
          tab.session.dispose();
        }
        canaryAbsent();
      }
      suite.host.reboot();
      report({
        scenario: 'Hostile input: another device’s manifest (real envelope, real server)',
        iterations: sessions.length + HOSTILE.length + 1,
        counts: {
          'slots written': slots.length,
          'blobs refused whole': refusedBlobs,
          'entries dropped': dropped,
          'entries listed': listed.length,
          'display strings with controls / over length': unsafeDisplay,
          'joins ended with message': joinsEndedWithMessage,
          'joins other': joinsOther,
          'terminal text with stray controls': unsafeTerminal,
          'listed cwds': cwds.length,
          'cwd tabs started': cwdTabs,
          'cwd tabs refused with message': cwdRefused,
          'commands injected (canary)': existsSync(CANARY) ? 1 : 0,
        },
      });
      assert.equal(unsafeDisplay, 0);
      assert.equal(joinsOther, 0);
      assert.equal(cwdTabs + cwdRefused, cwds.length, 'every listed cwd either started a shell or gave a message');
      assert.equal(unsafeTerminal, 0);
      assert.ok(dropped > 0 && refusedBlobs > 0, 'hostile entries were reported in the log');
      assert.ok(listed.every((session) => /^[a-z2-7]{26}$/.test(session.id)));
      canaryAbsent();
    } finally {
      cross.dispose();
      await client.stop();
      await server.stop();
    }
    report({ scenario: 'Hostile input: canary checks', iterations: canaryChecks, counts: { 'canary created': existsSync(CANARY) ? 1 : 0 } });
  });

  // BUG (reported to the lead): two sanitisers miss C1 controls (U+0080-U+009F, e.g. U+009B, the 8-bit
  // CSI that xterm.js honours) and bidi overrides (U+202E):
  //  - PersistentSession.status() (src/session/persistentSession.ts) strips only [\x00-\x1f\x7f], so a
  //    ConnectError naming a host whose ssh config HostName holds U+009B writes a live CSI into the tab;
  //  - SshConfigError (parseHostTarget) and InvalidSessionIdError quote the input with JSON.stringify,
  //    which leaves U+0080-U+009F and U+202E raw in messages shown to the user.
  // Fix: strip or escape /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/ in status()
  // and in the two error constructors (blob.ts's CONTROL_CHARS is the right set). Un-skip then.
  it('shows no raw C1 or bidi control in error messages and tab status lines', async () => {
    const offenders: string[] = [];
    for (const input of ['\x9b31mC1-csi', 'bidi \u202eevil\u202c', '\x9b2J']) {
      for (const attempt of [() => parseHostTarget(input), () => assertSessionId(input)]) {
        try {
          attempt();
        } catch (error) {
          if (UNSAFE_DISPLAY.test((error as Error).message)) offenders.push(JSON.stringify((error as Error).message));
        }
      }
    }
    const resolved = resolveHost('evil', { homeDir: tempDir('tetherrel-home-'), localUser: suite.host.user, configText: 'Host evil\n  HostName \u009b2J\u009b31mevil.invalid\n' });
    const tab = suite.open({ host: { ...resolved, identityFiles: suite.host.resolved().identityFiles, knownHostsFiles: suite.host.resolved().knownHostsFiles } });
    await tab.waitFor(() => tab.session.state === 'ended', 30_000, 'tab ends');
    const stray = strayControls(tab.text.split('\r\n').filter((line) => line.includes('[tether]')).join('\r\n'));
    if (stray.length > 0) offenders.push(`status line: ${stray.join(' ')}`);
    report({ scenario: 'C1/bidi controls in messages', iterations: 7, counts: { offenders: offenders.length } });
    assert.deepEqual(offenders, []);
  });
});
