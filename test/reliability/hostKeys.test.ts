/**
 * Host keys: a changed key, a revoked key (@revoked in known_hosts) and an unknown key the user
 * refuses, on the target and on a ProxyJump hop. The connection must stop before authentication:
 * the impostor's sshd log (LogLevel VERBOSE) shows the connection and no authentication attempt,
 * and a host behind a refused hop is never contacted.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PersistentSession } from '../../src/session/persistentSession';
import { newSessionId } from '../../src/common/sessionId';
import { ConnectError, ConnectionPool } from '../../src/ssh/sshConnection';
import type { ResolvedHost } from '../../src/ssh/sshConfig';
import { SshHost } from '../support/sshHost';
import { TabRecorder, testPool } from '../integration/fixtures/sessionHarness';
import { CapturingLog, report, sleep, tempDir } from './common';

const REPEATS = Number(process.env.TETHER_REL_HOSTKEY_REPEATS ?? 3);
const AUTH_ATTEMPT = /publickey|Accepted|Failed|userauth|Postponed|password|keyboard-interactive|Authentication/i;

type Case = 'changed' | 'revoked' | 'unknown-refused';

describe('reliability: host keys', function () {
  this.timeout(300_000);
  let real: SshHost;
  let impostor: SshHost;
  let jumpReal: SshHost;
  const log = new CapturingLog();
  const dir = tempDir('tetherrel-knownhosts-');
  let prompts = 0;

  before(async () => {
    real = await SshHost.start({ user: 'tetherrelk' });
    impostor = await SshHost.start({ user: 'tetherrelk' });
    jumpReal = await SshHost.start({ user: 'tetherrelj' });
  });

  after(async () => {
    await real?.dispose();
    await impostor?.dispose();
    await jumpReal?.dispose();
  });

  const pool = (): ConnectionPool =>
    testPool({
      confirmUnknown: async () => {
        prompts++;
        return false;
      },
      log,
    });

  const impostorKey = (): string => readFileSync(`${impostor.hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');

  /** known_hosts that makes `impostor` (at its port) changed, revoked, or unknown. */
  function knownHostsFor(kind: Case): string {
    const file = join(dir, `${kind}-${newSessionId()}`);
    const name = `[127.0.0.1]:${impostor.port}`;
    if (kind === 'changed') writeFileSync(file, `${real.knownHostsLine(impostor.port)}\n`);
    else if (kind === 'revoked') writeFileSync(file, `@revoked ${name} ${impostorKey()}\n${name} ${impostorKey()}\n`);
    else writeFileSync(file, '');
    return file;
  }

  const expected: Record<Case, RegExp> = { changed: /changed/, revoked: /@revoked/, 'unknown-refused': /not accepted/ };

  it(`stops before authentication on the target and on a ProxyJump hop (${REPEATS} repeats of each case)`, async () => {
    let refusals = 0;
    let authAttempts = 0;
    let reachedBehindHop = 0;
    let wrongReason = 0;
    let tabsEnded = 0;
    let tabReconnects = 0;
    let attempts = 0;
    const cases: Case[] = ['changed', 'revoked', 'unknown-refused'];
    for (let r = 0; r < REPEATS; r++) {
      for (const kind of cases) {
        for (const where of ['target', 'hop'] as const) {
          attempts++;
          const p = pool();
          const impostorMark = impostor.log().length;
          const realMark = real.log().length;
          const impostorHost = impostor.resolved({ knownHostsFile: knownHostsFor(kind), label: `impostor-${kind}` });
          const target: ResolvedHost = where === 'target' ? impostorHost : real.resolved({ label: 'behind-hop', proxyJump: [impostorHost] });
          const promptsBefore = prompts;
          try {
            await p.acquire(target);
            assert.fail(`${kind} on the ${where}: connected`);
          } catch (error) {
            if (ConnectError.is(error) && error.reason === 'host-key' && expected[kind].test(error.message)) refusals++;
            else {
              wrongReason++;
              console.log(`      ${kind}/${where}: ${(error as Error).message}`);
            }
          } finally {
            p.dispose();
          }
          if (kind === 'unknown-refused') assert.equal(prompts, promptsBefore + 1, 'the user was asked once');
          await sleep(300);
          const impostorLog = impostor.log().slice(impostorMark);
          assert.match(impostorLog, /Connection from 127\.0\.0\.1/, 'the impostor was contacted (the test can fail)');
          if (AUTH_ATTEMPT.test(impostorLog)) {
            authAttempts++;
            console.log(`      ${kind}/${where}: impostor log shows authentication: ${impostorLog}`);
          }
          if (where === 'hop' && /Connection from/.test(real.log().slice(realMark))) reachedBehindHop++;
        }
      }
    }
    // The same through a tab: created and restored tabs end with the message and do not retry.
    for (const kind of cases) {
      for (const mode of ['create', 'attach'] as const) {
        const p = pool();
        const connectsBefore = log.lines.filter((line) => /ssh: connecting to/.test(line)).length;
        const tab = new TabRecorder(
          new PersistentSession({
            id: newSessionId(),
            host: impostor.resolved({ knownHostsFile: knownHostsFor(kind), label: `impostor-${kind}` }),
            pool: p,
            log,
            mode,
            preference: 'tmux',
            multiplexer: 'tmux',
            reconnect: { baseDelayMs: 100, maxDelayMs: 300, jitter: 0 },
          }),
        );
        void tab.session.start({ cols: 80, rows: 24 });
        const code = await Promise.race([tab.exited, sleep(15_000).then(() => -1)]);
        await sleep(500);
        if (code === 1 && /host key/.test(tab.plain)) tabsEnded++;
        else console.log(`      tab ${kind}/${mode}: code ${code}, ${JSON.stringify(tab.plain.slice(-200))}`);
        tabReconnects += log.lines.filter((line) => /ssh: connecting to/.test(line)).length - connectsBefore - 1;
        tab.session.dispose();
        p.dispose();
      }
    }
    report({
      scenario: 'Host keys: changed / @revoked / unknown refused, target and ProxyJump hop',
      iterations: attempts,
      counts: {
        'refused with the right reason': refusals,
        'other errors': wrongReason,
        'auth attempts seen by impostor sshd': authAttempts,
        'hosts behind a refused hop contacted': reachedBehindHop,
        'tabs ended with host-key message': `${tabsEnded}/6`,
        'retries after a host-key refusal': tabReconnects,
      },
    });
    assert.equal(refusals, attempts);
    assert.equal(authAttempts, 0);
    assert.equal(reachedBehindHop, 0);
    assert.equal(tabsEnded, 6);
    assert.equal(tabReconnects, 0);
  });

  it('still connects to the real host through the real hop (the checks are not just refusing everything)', async () => {
    const p = pool();
    try {
      const target = real.resolved({ label: 'real-behind-hop', proxyJump: [jumpReal.resolved()] });
      const connection = await p.acquire(target);
      assert.ok(connection.isOpen);
      await sleep(300);
      assert.match(jumpReal.log(), /Accepted publickey for tetherrelj/);
      assert.match(real.log(), /Accepted publickey for tetherrelk/);
    } finally {
      p.dispose();
    }
  });
});
