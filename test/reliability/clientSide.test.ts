/**
 * Issue 14, defect 5 (client side), against a real sshd and tmux:
 * - tmux expands formats in `new-session -c`: a start directory named `#(touch X)` ran `touch`.
 *   Hostile directories, device names and titles now reach the host as data only.
 * - A join looked another device's host label up in this device's ssh config and mixed that alias's
 *   IdentityFile and ProxyJump with the listed host name, user and port. The local alias is now used
 *   only when all three match; otherwise the listed target is reached with defaults, and the tab
 *   and the log say so.
 */
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inventoryScript, parseInventory } from '../../src/multiplexer/hostInventory';
import { resolveListedHost } from '../../src/ssh/listedHost';
import { PersistentSession } from '../../src/session/persistentSession';
import { hostCapabilities } from '../../src/multiplexer/hostCapabilities';
import { cleanMetaText } from '../../src/multiplexer/sessionMetadata';
import { shellQuote } from '../../src/common/quoting';
import { ConnectionPool } from '../../src/ssh/sshConnection';
import { TrustStore } from '../../src/ssh/trustStore';
import { testKeys } from '../support/sshHost';
import { HostSuite, TabRecorder, noPrompts } from '../integration/fixtures/sessionHarness';
import { CapturingLog, report, tempDir } from './common';

const CANARY = `/tmp/tetherrel-canary-client-${process.pid}`;
const TOUCH = `touch ${CANARY}`;

describe('reliability: client side of the host (issue 14, defect 5)', function () {
  this.timeout(300_000);
  const log = new CapturingLog();
  // reconnect: PersistentSession's own timing, not TabRecorder.open's.
  const suite = new HostSuite(
    { user: 'tetherrelc' },
    { poolPer: 'suite', pool: { log, keepaliveCountMax: 3 }, tabs: { log, preference: 'tmux', probeTimeoutMs: 15_000, reconnect: undefined } },
  );

  before(() => rmSync(CANARY, { force: true }));
  after(() => rmSync(CANARY, { force: true }));

  it('#(…) and #{…} in a start directory, a device name or a title stay data', async () => {
    const names = [`#(${TOUCH})`, `a#(${TOUCH})b`, `#{session_name}#{pane_id}`, `##(${TOUCH})`, `#[fg=red]x`, `#(${TOUCH})'$(${TOUCH})'`];
    let exactDirectory = 0;
    let metadataAsData = 0;
    for (const name of names) {
      const dir = `/tmp/tetherrel-cwd-${process.pid}-${names.indexOf(name)}/${name}`;
      suite.host.run(`mkdir -p -- ${shellQuote(dir)}`);
      const tab = suite.open({ cwd: dir, deviceName: `dev ${name}`, title: `title ${name}\n${TOUCH}` });
      await tab.waitForState('attached', 30_000);
      tab.type('pwd\r');
      const shown = dir.replace(/[$()[\]{}.*+?^|\\]/g, '\\$&');
      await tab.waitFor(new RegExp(`\\r?\\n${shown}\\r?\\n`), 15_000, `pwd shows ${dir}`);
      exactDirectory++;
      const connection = await suite.pool.acquire(suite.host.resolved());
      const inventory = parseInventory((await connection.runScript(inventoryScript(await hostCapabilities(connection)), 15_000)).output);
      const row = inventory.find((session) => session.id === tab.session.id);
      if (row?.meta?.device === cleanMetaText(`dev ${name}`, 64) && row?.meta?.title === cleanMetaText(`title ${name}\n${TOUCH}`, 100)) metadataAsData++;
      tab.session.dispose();
    }
    report({
      scenario: 'Client side: tmux formats in a cwd, device name and title',
      iterations: names.length,
      counts: { 'started in the exact directory': exactDirectory, 'metadata read back as data': metadataAsData, 'canary created': existsSync(CANARY) ? 1 : 0 },
    });
    assert.equal(exactDirectory, names.length);
    assert.equal(metadataAsData, names.length);
    assert.equal(existsSync(CANARY), false, 'a tmux format ran a command');
  });

  it("a foreign host label never lends this device's alias settings to the listed target", async () => {
    const home = tempDir('tetherrel-home-');
    const knownHosts = suite.host.writeKnownHosts();
    const badKey = join(home, 'alias_only_key');
    writeFileSync(badKey, 'not a key\n');
    // This device's config: defaults for every host, and aliases that share labels with the listing.
    const configText = [
      'Host build-1',
      '  HostName 127.0.0.1',
      '  User somebody-else',
      `  Port ${suite.host.resolved().port}`,
      `  IdentityFile ${badKey}`,
      '  ProxyJump evil-hop.invalid',
      'Host build-2',
      '  HostName 127.0.0.1',
      `  User ${suite.host.user}`,
      `  Port ${suite.host.resolved().port}`,
      `  IdentityFile ${testKeys().clientKey}`,
      'Host build-3',
      '  HostName 10.255.255.1',
      `  IdentityFile ${badKey}`,
      'Host *',
      `  IdentityFile ${testKeys().clientKey}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${knownHosts}`,
    ].join('\n');
    const options = { configText, homeDir: home, localUser: 'nobody' };
    const listing = { user: suite.host.user, hostName: '127.0.0.1', port: suite.host.resolved().port };
    const session = suite.open({});
    await session.waitForState('attached', 30_000);
    session.session.detach();

    const cases = [
      { label: 'build-1', alias: false }, // same address, another user, and a ProxyJump: not used
      { label: 'build-2', alias: true }, // matches exactly: the alias is used
      { label: 'build-3', alias: false }, // another machine under the same name
      { label: 'not-configured-here', alias: false },
      { label: `x; ${TOUCH}`, alias: false },
    ];
    let aliasUsed = 0;
    let listedTarget = 0;
    let said = 0;
    let joined = 0;
    let mixed = 0;
    for (const { label, alias } of cases) {
      const { host: resolved, note } = resolveListedHost({ hostLabel: label, ...listing }, options);
      assert.equal(resolved.hostName, listing.hostName);
      assert.equal(resolved.user, listing.user);
      assert.equal(resolved.port, listing.port);
      if (resolved.proxyJump.length > 0 || resolved.identityFiles.includes(badKey)) mixed++;
      if (alias) {
        assert.equal(note, undefined, label);
        aliasUsed++;
      } else {
        assert.match(note ?? '', /connecting to the listed \S+ with default settings/, label);
        listedTarget++;
      }
      const join_ = new TabRecorder(new PersistentSession({ id: session.session.id, host: resolved, pool: new ConnectionPool({ prompter: noPrompts, trustStore: new TrustStore(join(tempDir('tetherrel-trust-'), 'known_hosts')), confirmUnknownHostKey: async () => false, log, readyTimeoutMs: 10_000 }), log, mode: 'attach', multiplexer: 'tmux', notice: note, probeTimeoutMs: 15_000 }));
      suite.tabs.push(join_);
      void join_.session.start({ cols: 100, rows: 30 });
      await join_.waitForState('attached', 30_000);
      joined++;
      if (note && join_.text.includes('with default settings')) said++;
      join_.session.dispose();
    }
    report({
      scenario: 'Client side: a foreign host label on join',
      iterations: cases.length,
      counts: { 'local alias used (all three match)': aliasUsed, 'listed target with defaults': listedTarget, 'said so in the tab': said, 'alias IdentityFile/ProxyJump mixed in': mixed, joined, 'canary created': existsSync(CANARY) ? 1 : 0 },
    });
    assert.equal(mixed, 0);
    assert.equal(said, listedTarget);
    assert.equal(joined, cases.length);
    assert.equal(existsSync(CANARY), false);
  });
});
