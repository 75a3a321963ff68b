import assert from 'node:assert/strict';
import { newSessionId } from '../../../src/common/sessionId';
import { describeHostFailure, describeHostSession, hostFailure } from '../../../src/editor/hostSessionText';
import { ConnectError } from '../../../src/ssh/sshConnection';
import { HostKeyError } from '../../../src/ssh/hostKeyVerifier';
import { SshConfigError } from '../../../src/ssh/sshConfig';

describe('Hosts view text for a host session', () => {
  const now = 1_700_000_000_000;
  const id = newSessionId();
  const base = { id, multiplexer: 'tmux' as const, attachedClients: 0, createdAt: now - 3 * 3600_000 };

  it('explains a deliberate detach instead of warning about an orphan', () => {
    const text = describeHostSession({ ...base, meta: { device: 'laptop', detachedBy: 'laptop', detachedAt: now - 2 * 3600_000 } }, 'box', now);
    assert.equal(text.orphan, false);
    assert.equal(text.description, 'detached from laptop 2 h ago · started 3 h ago');
    assert.match(text.tooltip, /Detached by: laptop/);
  });

  it('says where it is open, from the host and from the listings', () => {
    const attached = describeHostSession({ ...base, attachedClients: 2, clientDevices: ['desktop'], meta: { device: 'desktop' } }, 'box', now);
    assert.equal(attached.description, 'attached on desktop and 1 other client · started 3 h ago');
    const listed = describeHostSession({ ...base, attachedClients: 1, clientDevices: ['desktop'], usedBy: 'open on desktop', meta: { device: 'desktop' } }, 'box', now);
    assert.equal(listed.description, 'open on desktop · started 3 h ago');
    assert.equal(describeHostSession({ ...base, meta: { device: 'laptop' } }, 'box', now).description, 'last used on laptop · started 3 h ago');
  });

  it('keeps the orphan warning only without metadata and without a listing', () => {
    const orphan = describeHostSession(base, 'box', now);
    assert.equal(orphan.orphan, true);
    assert.equal(orphan.description, 'orphan: listed by no device · started 3 h ago');
    assert.equal(describeHostSession({ ...base, usedBy: 'open here' }, 'box', now).orphan, false);
  });

  it('shows the title as the label, the short ID otherwise', () => {
    assert.equal(describeHostSession({ ...base, meta: { title: 'build server logs' } }, 'box', now).label, 'build server logs');
    assert.equal(describeHostSession(base, 'box', now).label, `tether_${id.slice(0, 6)}…`);
  });
});

describe('describeHostFailure', () => {
  it('says why and what to do next, by kind of failure', () => {
    const refused = describeHostFailure(hostFailure(new ConnectError('unreachable', 'connect ECONNREFUSED 127.0.0.1:2222')));
    assert.equal(refused.description, 'cannot list: connect ECONNREFUSED 127.0.0.1:2222');
    assert.match(refused.tooltip, /ECONNREFUSED 127\.0\.0\.1:2222\n\nCheck that the host is up and reachable/);
    const socket = Object.assign(new Error('connect EHOSTUNREACH 10.0.0.9:22'), { code: 'EHOSTUNREACH' });
    assert.match(describeHostFailure(hostFailure(socket)).next, /host is up and reachable/);
    assert.match(describeHostFailure(hostFailure(new ConnectError('timeout', 'db1 did not answer in time'))).next, /host is up and reachable/);
    assert.match(describeHostFailure(hostFailure(new ConnectError('auth', 'All configured authentication methods failed'))).next, /IdentityFile or agent/);
    const changed = new HostKeyError('changed', 'db1', ['SHA256:abc'], 'SHA256:def', 'host key for db1 changed: expected SHA256:abc, got SHA256:def');
    assert.match(describeHostFailure(hostFailure(new ConnectError('host-key', changed.message, changed))).next, /never changes known_hosts/);
    assert.match(describeHostFailure(hostFailure(changed)).next, /never changes known_hosts/);
    assert.match(describeHostFailure(hostFailure(new SshConfigError('invalid-target', 'not a valid host: "a b"'))).next, /Open SSH Config/);
    assert.match(describeHostFailure(hostFailure(new Error('something odd'))).next, /Tether: Show Log/);
  });

  it('decides by the error, never by its text', () => {
    assert.equal(hostFailure(new Error('connect ECONNREFUSED 127.0.0.1:2222')).kind, 'other');
    assert.equal(hostFailure(new Error('host key for db1 changed')).kind, 'other');
    assert.equal(hostFailure('permission denied').kind, 'other');
    assert.equal(hostFailure(new ConnectError('auth', 'unreachable, timed out')).kind, 'auth');
  });

  it('keeps the description short and on one line, the tooltip whole', () => {
    const long = `first line\n${'x'.repeat(200)}`;
    const text = describeHostFailure({ message: long, kind: 'other' });
    assert.ok(text.description.length <= 'cannot list: '.length + 60);
    assert.doesNotMatch(text.description, /\n/);
    assert.match(text.tooltip, new RegExp(`first line ${'x'.repeat(200)}`));
    assert.equal(describeHostFailure({ message: '  ', kind: 'other' }).description, 'cannot list: unknown error');
  });
});
