import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteScript, MAX_BLOB_FILE_BYTES, MAX_INLINE_FILE_BYTES, MAX_WATCH_SLOTS, parseReadLine, parseWatchLine, putScript, readScript, SSH_SYNC_LIMITS, watcherScript } from '../../../src/sync/sshSyncScripts';
import { isSshSyncUrl, parseSshSyncUrl, shellDir, SshSyncUrlError } from '../../../src/sync/sshSyncUrl';
import { sshAccountId } from '../../../src/sync/sshTransport';
import { wrapScript, MAX_REMOTE_COMMAND_BYTES } from '../../../src/common/quoting';
import { newSessionId } from '../../../src/common/sessionId';

const SLOT = 'abcdefghijklmnopqrstuvwxyz';

async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
const ACCOUNT = 'a'.repeat(64);

describe('ssh sync URL', function () {
  it('accepts an alias, user@host:port, IPv6 and a folder', function () {
    assert.deepEqual(parseSshSyncUrl('ssh://build-1'), { hostLabel: 'build-1', dir: { home: true, path: '.tether/sync' }, display: 'ssh://build-1/~/.tether/sync' });
    assert.equal(parseSshSyncUrl('SSH://alice@10.0.0.5:2222/').hostLabel, 'alice@10.0.0.5:2222');
    assert.deepEqual(parseSshSyncUrl('ssh://alice@[::1]:2222/~/sync/tether').dir, { home: true, path: 'sync/tether' });
    assert.equal(parseSshSyncUrl('ssh://alice@[::1]:2222').hostLabel, 'alice@[::1]:2222');
    assert.deepEqual(parseSshSyncUrl('ssh://h/srv/tether-sync/').dir, { home: false, path: '/srv/tether-sync' });
    assert.deepEqual(parseSshSyncUrl('ssh://h/~/.tether/sync').dir, { home: true, path: '.tether/sync' });
    assert.equal(parseSshSyncUrl('ssh://h/~/.tether/sync').display, parseSshSyncUrl('ssh://h').display);
    assert.ok(isSshSyncUrl('  ssh://h ') && !isSshSyncUrl('https://h'));
  });

  it('refuses hostile or malformed input with a clear error', function () {
    const bad = [
      'ssh://',
      'https://h',
      'ssh://-oProxyCommand=evil',
      'ssh://h;id',
      'ssh://h$(id)',
      'ssh://h /x',
      'ssh://h/~/$(id)',
      'ssh://h/~/a;rm -rf ~',
      "ssh://h/~/it's",
      'ssh://h/~/`id`',
      'ssh://h/../etc',
      'ssh://h/~/./x',
      'ssh://h/~/..',
      'ssh://h/~/a/../../x',
      'ssh://h/~',
      'ssh://h/~/-rf',
      'ssh://h:99999',
      'ssh://h/a\nb',
      `ssh://h/${'a'.repeat(600)}`,
    ];
    for (const input of bad) assert.throws(() => parseSshSyncUrl(input), SshSyncUrlError, input);
  });

  it('puts the folder on a command line only quoted', function () {
    assert.equal(shellDir({ home: true, path: '.tether/sync' }), '"$HOME"/.tether/sync');
    assert.equal(shellDir({ home: false, path: '/srv/a b' }), "'/srv/a b'");
  });
});

describe('ssh sync scripts (run by the local sh)', function () {
  let home: string;
  const loc = parseSshSyncUrl('ssh://h');
  const sh = (script: string, input = ''): string => execFileSync('sh', ['-c', script], { input, env: { HOME: home, PATH: process.env.PATH }, encoding: 'utf8' });
  const dir = (): string => join(home, '.tether/sync', ACCOUNT);

  beforeEach(function () {
    home = mkdtempSync(join(tmpdir(), 'tether-sshsync-'));
  });
  afterEach(function () {
    rmSync(home, { recursive: true, force: true });
  });

  it('fit in one remote command line', function () {
    for (const script of [putScript(loc, ACCOUNT, SLOT, 123456789, ''), readScript(loc, ACCOUNT), readScript(loc, ACCOUNT, [SLOT]), deleteScript(loc, ACCOUNT, SLOT), watcherScript(loc, ACCOUNT, SLOT)]) {
      assert.ok(Buffer.byteLength(wrapScript(`echo __marker__\n${script}`)) <= MAX_REMOTE_COMMAND_BYTES);
    }
  });

  it('refuse a slot ID or account that is not one', function () {
    assert.throws(() => putScript(loc, ACCOUNT, "x'; id", undefined, 'QUJD'));
    assert.throws(() => readScript(loc, ACCOUNT, ['$(id)']));
    assert.throws(() => deleteScript(loc, '../../etc', SLOT));
  });

  this.timeout(30_000);

  it('write with version preconditions: create, conflict, update; delete leaves the version to go above', function () {
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, undefined, 'QUJD')).trim(), 'OK 1');
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, undefined, 'QUJD')).trim(), 'CONFLICT 1');
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, 7, 'QUJD')).trim(), 'CONFLICT 1');
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, 1, 'QUJDRA==')).trim(), 'OK 2');
    const lines = sh(readScript(loc, ACCOUNT)).trim().split('\n');
    assert.equal(lines.at(-1), 'END');
    const read = parseReadLine(lines[0]);
    assert.deepEqual(read && 'record' in read ? { ...(read.record as object), updatedAt: undefined } : undefined, { version: 2, data: 'QUJDRA==', updatedAt: undefined, slotId: SLOT });
    assert.equal(sh(deleteScript(loc, ACCOUNT, SLOT)).trim(), 'OK');
    assert.deepEqual(readdirSync(dir()), [`${SLOT}.d2`]);
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, undefined, 'QUJD')).trim(), 'OK 3');
    assert.equal(sh(`stat -c %a "${dir()}"`).trim(), '700');
  });

  it('hold the server limits: blob size, slots per account, account bytes', function () {
    const limits = { maxBlobBytes: 64, maxSlots: 2, maxAccountBytes: 128 };
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, undefined, 'A'.repeat(200), limits)).trim(), 'TOO_LARGE');
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, undefined, 'A'.repeat(80), limits)).trim(), 'OK 1');
    assert.equal(sh(putScript(loc, ACCOUNT, 'bbcdefghijklmnopqrstuvwxyz', undefined, 'A'.repeat(80), limits)).trim(), 'OK 1');
    assert.equal(sh(putScript(loc, ACCOUNT, 'cbcdefghijklmnopqrstuvwxyz', undefined, 'A'.repeat(8), limits)).trim(), 'TOO_MANY_SLOTS');
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, 1, 'A'.repeat(80), { ...limits, maxAccountBytes: 64 })).trim(), 'ACCOUNT_FULL');
  });

  it('bound the base64 exactly; only base64 reaches the script, and the host checks it again', function () {
    const limits = { maxBlobBytes: 66, maxSlots: 8, maxAccountBytes: 4096 }; // 88 base64 characters
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, undefined, 'A'.repeat(89), limits)).trim(), 'TOO_LARGE');
    for (const bad of ["QUJD'; touch pwned; '", 'QUJD\n', 'QU JD', '$(id)']) assert.throws(() => putScript(loc, ACCOUNT, SLOT, undefined, bad), TypeError, bad);
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, undefined, 'QUJD').replace("b64='QUJD'", "b64='QU JD'")).trim(), 'ERR the blob is not base64');
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, undefined, 'A'.repeat(88), limits)).trim(), 'OK 1');
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, 1, 'A'.repeat(88), limits)).trim(), 'OK 2');
    const [line] = sh(readScript(loc, ACCOUNT, [SLOT])).trim().split('\n');
    const read = parseReadLine(line);
    assert.ok(read && !('missing' in read));
    assert.equal((read.record as { data: string }).data, 'A'.repeat(88));
    assert.ok(!readdirSync(dir()).includes('.lock'), 'the lock is released');
  });

  it('write the largest blob from a script on stdin (as the remote shell runs it); a read sends it as base64', function () {
    const largest = randomBytes(SSH_SYNC_LIMITS.maxBlobBytes).toString('base64');
    const viaStdin = (script: string): string => execFileSync('sh', [], { input: `(\n${script}\n) </dev/null\n`, env: { HOME: home, PATH: process.env.PATH }, encoding: 'utf8', maxBuffer: 4 << 20 });
    assert.equal(viaStdin(putScript(loc, ACCOUNT, SLOT, undefined, largest)).trim(), 'OK 1');
    assert.equal(viaStdin(putScript(loc, ACCOUNT, SLOT, 1, randomBytes(SSH_SYNC_LIMITS.maxBlobBytes + 3).toString('base64'))).trim(), 'TOO_LARGE');
    const [line] = viaStdin(readScript(loc, ACCOUNT, [SLOT])).split('\n');
    assert.ok(line.startsWith('B '), 'over the inline size: base64');
    const read = parseReadLine(line);
    assert.ok(read && !('missing' in read));
    assert.equal((read.record as { data: string }).data, largest);
    sh(putScript(loc, ACCOUNT, SLOT, 1, 'QUJD'));
    assert.ok(sh(readScript(loc, ACCOUNT, [SLOT])).startsWith(`F ${SLOT} 2 {"version":2,`), 'a small file: as it is');
  });

  it('take over a lock whose holder died, and only then', function () {
    sh(putScript(loc, ACCOUNT, SLOT, undefined, 'QUJD'));
    execFileSync('mkdir', [join(dir(), '.lock')]);
    writeFileSync(join(dir(), '.lock/o'), 'dead.1\n');
    const started = Date.now();
    assert.equal(sh(putScript(loc, ACCOUNT, SLOT, 1, 'QUJD')).trim(), 'OK 2');
    assert.ok(Date.now() - started >= 9000, 'waited for the holder before taking over');
  }).timeout(60_000);

  it('the watcher prints the markers, and never runs what a file name holds', function () {
    sh(putScript(loc, ACCOUNT, SLOT, undefined, 'QUJD'));
    writeFileSync(join(dir(), '$(touch pwned).v1'), '');
    const out = sh(`(${watcherScript(loc, ACCOUNT, 'bbcdefghijklmnopqrstuvwxyz', 'sh', { pollSeconds: 0.1, heartbeatSeconds: 1 })}) & p=$!; sleep 1; kill $p`);
    const lines = out.trim().split('\n');
    assert.equal(lines[0], 'M sh');
    const state = parseWatchLine(lines[1]);
    assert.ok(state);
    assert.equal(state.versions.get(SLOT), 1);
    assert.ok(state.heartbeats.has('bbcdefghijklmnopqrstuvwxyz'));
    // The line's clock is the watcher's own latest heartbeat (no `date` per line).
    assert.equal(state.clock, state.heartbeats.get('bbcdefghijklmnopqrstuvwxyz'));
    assert.ok(Math.abs(state.clock - Date.now() / 1000) < 5);
    // The crafted name never reaches a line (it could end one); it is not run either.
    assert.ok(!out.includes('pwned'), out);
    assert.ok(!readdirSync(dir()).includes('pwned'));
  });

  it('the watcher prints a changed file before its line, never on its first line or for its own slot', function () {
    const own = 'bbcdefghijklmnopqrstuvwxyz';
    const other = 'cbcdefghijklmnopqrstuvwxyz';
    sh(putScript(loc, ACCOUNT, SLOT, undefined, 'QUJD'));
    const put = (slot: string, data: string) => `(${putScript(loc, ACCOUNT, slot, undefined, data)}) >/dev/null`;
    const out = sh(`(${watcherScript(loc, ACCOUNT, own, 'sh', { pollSeconds: 0.1, heartbeatSeconds: 5 })}) & p=$!; sleep 0.5; ${put(other, 'REVG')}; ${put(own, 'R0hJ')}; sleep 0.6; kill $p`);
    const lines = out.trim().split('\n');
    assert.equal(lines[0], 'M sh');
    assert.ok(parseWatchLine(lines[1]), 'the first line is the baseline, with no file before it');
    const blobLines = lines.filter((line) => line.startsWith('B ') || line.startsWith('F '));
    assert.equal(blobLines.length, 1, out);
    assert.ok(blobLines[0].startsWith('F '), 'a small file of putScript goes as it is');
    const parsed = parseReadLine(blobLines[0]);
    assert.ok(parsed && !('missing' in parsed));
    assert.equal(parsed.slotId, other);
    assert.deepEqual(parsed.record, { version: 1, data: 'REVG', updatedAt: (parsed.record as { updatedAt: string }).updatedAt, slotId: other });
    const after = parseWatchLine(lines[lines.indexOf(blobLines[0]) + 1]);
    assert.equal(after?.versions.get(other), 1, 'the S line that names the new version follows its file');
  });
  it('the watcher sends a hostile file only the bounded base64 way: no line breaks, same record as a read', async function () {
    const own = 'bbcdefghijklmnopqrstuvwxyz';
    sh(putScript(loc, ACCOUNT, SLOT, undefined, 'QUJD'));
    const good = readFileSync(join(dir(), `${SLOT}.blob`));
    const record = (data: string): string => `{"version":1,"updatedAt":"2026-12-03T07:00:00Z","data":"${data}"}`;
    const big = `${record('A'.repeat(MAX_INLINE_FILE_BYTES))}\n`;
    // [what, file bytes, its .z marker (undefined: none), the line kind expected]
    const cases: Array<[string, Buffer, number | undefined, 'F' | 'B']> = [
      ['a file as putScript writes it', Buffer.from(`${record('QUJD')}\n`), undefined, 'F'],
      ['a file moved from another slot', good, good.length, 'F'],
      ['embedded newline, marker of the whole file', Buffer.from(`${record('QUJD')}\n${record('REVG')}\n`), undefined, 'B'],
      ['embedded newline, marker of the first line', Buffer.from(`${record('QUJD')}\n${record('REVG')}\n`), record('QUJD').length + 1, 'B'],
      ['a second line without newline', Buffer.from(`${record('QUJD')}\nX`), record('QUJD').length + 1, 'B'],
      ['no final newline', Buffer.from(record('QUJD')), undefined, 'B'],
      ['a space', Buffer.from(`{"version":1, "data":"QUJD"}\n`), undefined, 'B'],
      ['an escaped quote', Buffer.from(`${record('QU\\"JD')}\n`), undefined, 'B'],
      ['single quotes and shell text', Buffer.from(`'$(touch pwned)' \`touch pwned\`; rm -rf ~\n`), undefined, 'B'],
      ['control bytes', Buffer.from(`${record('QUJD\x01\x1b[2J\r')}\n`), undefined, 'B'],
      ['a NUL byte', Buffer.from(`${record('QU\0JD')}\n`), undefined, 'B'],
      ['a byte above 127', Buffer.from(`${record('QUJD\u00e9')}\n`), undefined, 'B'],
      ['oversized, marker of its size', Buffer.from(big), undefined, 'B'],
      ['oversized, marker that lies', Buffer.from(big), 100, 'B'],
      ['an empty file', Buffer.alloc(0), undefined, 'B'],
    ];
    const slots = cases.map(() => newSessionId());
    const child = spawn('sh', ['-c', watcherScript(loc, ACCOUNT, own, 'sh', { pollSeconds: 0.05, heartbeatSeconds: 5 })], { env: { HOME: home, PATH: process.env.PATH } });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('latin1')));
    try {
      await waitFor(() => /^S /m.test(out), 'the first line');
      cases.forEach(([, bytes, z], i) => {
        writeFileSync(join(dir(), `${slots[i]}.blob`), bytes);
        writeFileSync(join(dir(), `${slots[i]}.z${z ?? bytes.length}`), '');
      });
      // The version markers last, as putScript does: the file is complete when its marker appears.
      slots.forEach((slot) => writeFileSync(join(dir(), `${slot}.v3`), ''));
      await waitFor(() => slots.every((slot) => new RegExp(`^S .* ${slot}\\.v3`, 'm').test(out)), 'every marker');
    } finally {
      child.kill();
    }
    const lines = out.split('\n').slice(0, -1);
    for (const line of lines) {
      assert.match(line, /^(M sh|S [0-9]+( [a-z0-9.]+)*|F [a-z2-7]{26} [0-9]+ [A-Za-z0-9+/={}":,-]+|B [a-z2-7]{26} [0-9]+ [A-Za-z0-9+/]*={0,2})$/, 'every line keeps to the protocol');
    }
    cases.forEach(([what, bytes, , kind], i) => {
      const printed = lines.filter((line) => / ([a-z2-7]{26}) /.exec(line)?.[1] === slots[i] && /^[FB] /.test(line));
      assert.equal(printed.length, 1, what);
      assert.equal(printed[0][0], kind, what);
      // Whatever the way, the record is the one a read of the file gives (base64 of its bytes).
      assert.deepEqual(parseReadLine(printed[0]), parseReadLine(`B ${slots[i]} 3 ${bytes.subarray(0, MAX_BLOB_FILE_BYTES).toString('base64')}`), what);
    });
    assert.ok(!readdirSync(dir()).includes('pwned') && !readdirSync(home).includes('pwned'), 'nothing in a file ran');
  });
});

describe('ssh sync parsing of host output', function () {
  it('bounds a flooded watch line', function () {
    const names = Array.from({ length: 3000 }, (_, i) => `${i.toString(32).padStart(26, 'a').replace(/[018-9]/g, 'b')}.v${i}`);
    const state = parseWatchLine(`S 100 ${names.join(' ')} junk *.v* ${SLOT}.s99`);
    assert.ok(state);
    assert.ok(state.versions.size <= MAX_WATCH_SLOTS);
    assert.equal(state.heartbeats.get(SLOT), 99);
    assert.equal(parseWatchLine('X 1 a'), undefined);
  });

  it('takes the slot from the file name and the version from the marker, never from the file', function () {
    const file = Buffer.from(JSON.stringify({ version: 99, slotId: 'zzzzzzzzzzzzzzzzzzzzzzzzzz', data: 'QUJD' })).toString('base64');
    assert.deepEqual(parseReadLine(`B ${SLOT} 4 ${file}`), { slotId: SLOT, record: { version: 4, data: 'QUJD', slotId: SLOT } });
    // A file that is not a record reads as empty data (refused by the reader, overwritten by its owner).
    assert.deepEqual(parseReadLine(`B ${SLOT} 4 ${Buffer.from('$(id)').toString('base64')}`), { slotId: SLOT, record: { version: 4, data: '', slotId: SLOT } });
    assert.equal(parseReadLine(`B ${SLOT} 4 not base64!`), undefined);
    assert.deepEqual(parseReadLine(`N ${SLOT}`), { slotId: SLOT, missing: true });
  });

  it('names the account folder by the hash of the token, like the server', function () {
    assert.match(sshAccountId('token'), /^[0-9a-f]{64}$/);
    assert.notEqual(sshAccountId('token'), sshAccountId('token2'));
  });
});
