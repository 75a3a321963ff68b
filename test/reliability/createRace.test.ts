/**
 * The tmux-create race (issue 13): twelve tabs created at the same moment on a host whose tmux server
 * is not running, in both tmux modes. Even rounds: the server was killed just before (its socket file
 * is stale). Odd rounds: the host's last session was just killed through Tether, so a server that
 * exits when empty (tmux's default, exit-empty) would be exiting while the creates reach it; it
 * then took sessions down with it right after the create had reported them. Every tab must end up
 * attached to its own session, and the host must hold exactly those twelve sessions.
 *
 * In control mode, tmux before 3.7 segfaulted when a notification (a create's %sessions-changed, a
 * detach's %client-detached) met a control client that was still identifying, and took every
 * session with it; one device now serialises those per host (controlStartsNeedSerialising).
 * Counts: docs/reliability.md.
 */
import assert from 'node:assert/strict';
import { newSessionId } from '../../src/common/sessionId';
import { SshHost } from '../support/sshHost';
import { TabRecorder, testPool } from '../integration/fixtures/sessionHarness';
import { report, sleep } from './common';

const ROUNDS = Number(process.env.TETHER_REL_CREATE_ROUNDS ?? 20);
const TABS = 12;

describe('reliability: simultaneous creates on a host without a running tmux server', function () {
  this.timeout(900_000);
  let host: SshHost;

  before(async function () {
    host = await SshHost.start({ user: 'tetherrelt' });
  });
  after(async () => host?.dispose());

  for (const tmuxMode of ['control', 'attach'] as const) {
    it(`${tmuxMode} mode: ${ROUNDS} rounds of ${TABS} creates at once, sessions lost 0`, async function () {
      const counts = { 'sessions lost': 0, 'tabs ended': 0, 'tabs not attached': 0, 'extra sessions': 0, 'fell back to attach': 0 };
      const details: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const pool = testPool();
        if (round % 2 === 0) {
          host.reboot(); // the server is gone; its socket file stays behind, as after a crash
        } else {
          // The host's last session is killed (a tab closed on the last device): a server that exits
          // when it has no session would be exiting while the twelve creates below reach it.
          host.reboot();
          const last = TabRecorder.open({ id: newSessionId(), host: host.resolved(), pool, mode: 'create', preference: 'tmux', tmuxMode });
          await last.waitForState('attached', 60_000);
          assert.deepEqual(await last.session.kill(), { killed: true });
          last.session.dispose();
        }
        const ids = Array.from({ length: TABS }, () => newSessionId());
        const tabs = ids.map((id) => TabRecorder.open({ id, host: host.resolved(), pool, mode: 'create', preference: 'tmux', tmuxMode }));
        try {
          await Promise.all(tabs.map((tab) => Promise.race([tab.waitForState('attached', 60_000).catch(() => undefined), tab.exited])));
          // Give a session that is about to vanish (a server exiting under it) the time to do so.
          await sleep(300);
          const onHost = new Set(host.tmuxSessions());
          for (const [index, tab] of tabs.entries()) {
            const name = `tether_${ids[index]}`;
            if (!onHost.has(name)) {
              counts['sessions lost']++;
              details.push(`round ${round} tab ${index}: ${name} missing on the host; state ${tab.session.state}; output ${JSON.stringify(tab.plain.slice(-200))}`);
            }
            if (tab.exitCode !== undefined) counts['tabs ended']++;
            else if (tab.session.state !== 'attached') counts['tabs not attached']++;
            if (tmuxMode === 'control' && /falling back|fell back/i.test(tab.plain)) counts['fell back to attach']++;
          }
          counts['extra sessions'] += [...onHost].filter((name) => !ids.some((id) => name === `tether_${id}`)).length;
        } finally {
          for (const tab of tabs) tab.session.dispose();
          pool.dispose();
        }
      }
      host.reboot();
      report({ scenario: `tmux create race (${tmuxMode}): ${TABS} creates at once, server not running`, iterations: ROUNDS, counts });
      for (const line of details.slice(0, 10)) console.log(`      ${line}`);
      assert.equal(counts['sessions lost'], 0, details.join('\n'));
      assert.equal(counts['tabs ended'], 0);
      assert.equal(counts['tabs not attached'], 0);
      assert.equal(counts['extra sessions'], 0);
    });
  }
});
