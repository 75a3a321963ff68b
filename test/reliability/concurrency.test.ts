/**
 * Concurrency: two devices closing, joining and killing one session at the same moment, 100 times.
 * A session is never killed while another device's client is attached to it, a join that loses the
 * race ends with the message (never an empty shell), and no session is left orphaned (running on the
 * host, listed by no device, with no client attached).
 */
import assert from 'node:assert/strict';
import { generateSyncKey } from '../../src/sync/syncKey';
import { SshHost } from '../support/sshHost';
import { TabRecorder, testPool } from '../integration/fixtures/sessionHarness';
import { newSessionId } from '../../src/common/sessionId';
import { TestDevice } from '../integration/fixtures/testDevice';
import { SyncServer, report, rng, sleep, tempDir, waitUntil } from './common';

const ROUNDS = Number(process.env.TETHER_REL_ROUNDS ?? 100);
const GONE = /no longer exists on host/;

describe('reliability: two devices at the same moment', function () {
  this.timeout(900_000);
  let host: SshHost;
  let server: SyncServer;
  let laptop: TestDevice;
  let desktop: TestDevice;

  before(async function () {
    host = await SshHost.start({ user: 'tetherrelc' });
    host.reboot();
    server = await SyncServer.start({ dataDir: tempDir('tetherrel-conc-data-') });
    const key = generateSyncKey();
    const hosts = () => host.resolved({ label: 'shared-host' });
    laptop = new TestDevice('laptop', server.url, key, hosts);
    desktop = new TestDevice('desktop', server.url, key, hosts);
    await Promise.all([laptop.goOnline(), desktop.goOnline()]);
    await waitUntil(() => laptop.cross.syncState === 'live' && desktop.cross.syncState === 'live', 10_000, 'both devices live');
  });

  after(async () => {
    await laptop?.dispose();
    await desktop?.dispose();
    await server?.stop();
    await host?.dispose();
  });

  const clientsOf = (name: string): number => {
    const out = host.tmux(`list-clients -t '=${name}' -F '#{client_name}'`).trim();
    return out === '' || /can't find|no server|error/i.test(out) ? 0 : out.split('\n').length;
  };

  async function joinedPair(): Promise<{ tab: TabRecorder; joined: TabRecorder }> {
    const tab = await laptop.open(host.resolved({ label: 'shared-host' }));
    await waitUntil(() => desktop.live().some((session) => session.id === tab.session.id), 5000, 'desktop lists the session');
    const joined = await desktop.join(desktop.live().find((session) => session.id === tab.session.id)!);
    await waitUntil(() => laptop.cross.closeVerdict(tab.session.id).kill === false, 5000, 'laptop sees the desktop listing');
    return { tab, joined };
  }

  it(`never kills a session in use and leaves none orphaned: close/close, close/join, kill/use (${ROUNDS} rounds)`, async () => {
    const seed = Number(process.env.TETHER_REL_SEED ?? Date.now() % 1_000_000);
    console.log(`      (seed ${seed})`);
    const random = rng(seed);
    const tally = {
      'close+close': 0,
      'close+join': 0,
      'kill+use': 0,
      'killed while in use': 0,
      'join lost the race, told': 0,
      'join kept the session': 0,
      'join closed by the tombstone': 0,
      'join still pending': 0,
      'empty shell after join': 0,
      'kill refused while used': 0,
      orphans: 0,
      'killed at close': 0,
      'killed by last to let go': 0,
    };
    for (let round = 0; round < ROUNDS; round++) {
      const mode = round % 3;
      let id: string;
      if (mode === 0) {
        tally['close+close']++;
        const { tab, joined } = await joinedPair();
        id = tab.session.id;
        const [a, b] = await Promise.all([laptop.close(id), desktop.close(joined.session.id)]);
        if (a.action === 'killed' || b.action === 'killed') tally['killed at close']++;
        else tally['killed by last to let go']++;
      } else if (mode === 1) {
        tally['close+join']++;
        const tab = await laptop.open(host.resolved({ label: 'shared-host' }));
        id = tab.session.id;
        await waitUntil(() => desktop.live().some((session) => session.id === id), 5000, 'desktop lists the session');
        const listed = desktop.live().find((session) => session.id === id)!;
        // The laptop closes the very moment the desktop joins.
        // A spread of delays so that each side wins some of the races.
        const delay = Math.floor(random() * 600);
        const [, joined] = await Promise.all([sleep(delay).then(() => laptop.close(id)), desktop.join(listed)]);
        await sleep(300);
        if (joined.session.state === 'attached') {
          joined.type(`echo joined-${round}-$((60+6))\r`);
          try {
            await joined.waitFor(new RegExp(`joined-${round}-66`), 5000);
            tally['join kept the session']++;
          } catch {
            const state: string = joined.session.state;
            if (state === 'ended' && GONE.test(joined.plain)) tally['join lost the race, told']++;
            else if (state === 'ended' && desktop.endedBy.has(id)) tally['join closed by the tombstone']++;
            else if (state === 'ended') tally['killed while in use']++;
            else {
              tally['empty shell after join']++;
              console.log(`      round ${round}: joined tab ${state}, no answer: ${JSON.stringify(joined.plain.slice(-300))}`);
            }
          }
          if (joined.session.state === 'attached') await desktop.close(id);
        } else if (joined.session.state === 'ended') {
          if (GONE.test(joined.plain)) tally['join lost the race, told']++;
          else if (desktop.endedBy.has(id)) tally['join closed by the tombstone']++;
          else {
            tally['empty shell after join']++;
            console.log(`      round ${round}: joined tab ended without a message: ${JSON.stringify(joined.plain.slice(-300))}`);
          }
        } else {
          tally['join still pending']++;
          console.log(`      round ${round}: joined tab still ${joined.session.state}`);
        }
      } else {
        tally['kill+use']++;
        const { tab, joined } = await joinedPair();
        id = tab.session.id;
        // The desktop's tmux client registers a few ms after its tab reports 'attached'; a kill in that
        // gap is the bug the skipped test below shows. Here the kill waits until tmux lists both clients.
        await waitUntil(() => clientsOf(`tether_${id}`) >= 2, 5000, 'both clients listed by tmux');
        let k = 0;
        const typer = setInterval(() => joined.type(String.fromCharCode(97 + (k++ % 26))), 5);
        const clientsBefore = clientsOf(`tether_${id}`);
        const outcome = await laptop.cross.kill(laptop.tabs.get(id)!.session);
        clearInterval(typer);
        if (outcome.action === 'killed') {
          console.log(`      round ${round}: killed while the desktop was attached (clients on host before the kill: ${clientsBefore}; desktop tab ${joined.session.state})`);
        }
        laptop.tabs.delete(id);
        laptop.publish();
        if (outcome.action === 'detached') tally['kill refused while used']++;
        await sleep(100);
        joined.type(`\x15echo used-${round}-$((70+7))\r`);
        try {
          await joined.waitFor(new RegExp(`used-${round}-77`), 5000);
        } catch {
          tally['killed while in use']++;
        }
        if (desktop.tabs.has(id)) {
          await waitUntil(() => desktop.cross.closeVerdict(id).kill, 5000, 'laptop withdrew its entry');
          await desktop.close(id);
        }
      }
      // No orphan: once no device uses it, the session goes.
      try {
        await waitUntil(() => !host.tmuxSessions().includes(`tether_${id}`), 10_000, 'session gone');
      } catch {
        const listed = [laptop, desktop].some((device) => device.client?.getRemoteState().slots.some((slot) => slot.blob.sessions.some((s) => s.id === id)));
        if (!listed && clientsOf(`tether_${id}`) === 0) {
          tally.orphans++;
          console.log(`      round ${round} (mode ${mode}): tether_${id} left running, unlisted, unattached`);
        }
        host.tmux(`kill-session -t '=tether_${id}'`);
      }
      for (const device of [laptop, desktop]) {
        for (const [tabId, tab] of device.tabs) {
          tab.session.dispose();
          device.tabs.delete(tabId);
        }
        device.publish();
      }
    }
    report({ scenario: 'Two devices close/join/kill at once', iterations: ROUNDS, counts: tally });
    assert.equal(tally['killed while in use'], 0);
    assert.equal(tally['empty shell after join'], 0);
    assert.equal(tally['join still pending'], 0);
    assert.equal(tally.orphans, 0);
    assert.equal(tally['kill refused while used'], tally['kill+use']);
    assert.deepEqual(host.tmuxSessions(), []);
  });

  // BUG (reported to the lead): PersistentSession.attach() (src/session/persistentSession.ts) sets the
  // state to 'attached' as soon as the exec channel for `tmux attach-session` opens. tmux registers the
  // client 9-40 ms later (measured on 2 loaded cores). In that gap the tab (and, through
  // TestDevice/CrossDeviceSessions, its manifest) says the session is in use, but the kill's host check
  // (#{session_attached} <= 1 in TmuxScripts.kill) cannot see the client, so another device's kill
  // succeeds and the freshly joined tab ends with "no longer exists". Seen once in 100 rounds of the
  // kill/use race when the suite ran under load. Fix: report 'attached' (and publish) only once the
  // client is attached on the host, e.g. after the first output bytes of the attach channel (tmux draws
  // the screen on attach), or have the attach script signal readiness. Un-skip then.
  it('refuses a kill from another device the moment a joined tab reports attached (20 rounds)', async () => {
    const owner = testPool();
    let killed = 0;
    try {
      for (let round = 0; round < 20; round++) {
        const tab = TabRecorder.open({ id: newSessionId(), host: host.resolved(), pool: owner, mode: 'create', preference: 'tmux' });
        await tab.waitForState('attached');
        const other = testPool();
        const joined = TabRecorder.open({ id: tab.session.id, host: host.resolved(), pool: other, mode: 'attach', multiplexer: 'tmux' });
        await new Promise<void>((resolve) => joined.session.on('state', (state) => state === 'attached' && resolve()));
        const outcome = await tab.session.kill();
        if (outcome.killed) killed++;
        joined.session.dispose();
        other.dispose();
        host.tmux(`kill-session -t '=${tab.session.name}'`);
      }
    } finally {
      owner.dispose();
    }
    report({ scenario: 'Kill at the moment a joined tab reports attached', iterations: 20, counts: { 'killed while the other tab said attached': killed } });
    assert.equal(killed, 0);
  });
});
