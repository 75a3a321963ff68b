import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { agentLinkScript, parseAgentLinkOutput } from '../../../src/ssh/agentForwarding';
import { innerShellCommand } from '../../../src/multiplexer/multiplexer';
import { newSessionId } from '../../../src/common/sessionId';

/** The script run by /bin/sh as on a host, with HOME and SSH_AUTH_SOCK of the test's choosing. */
function run(script: string, env: Record<string, string>): string {
  const result = spawnSync('/bin/sh', ['-c', script], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
  return result.stdout + result.stderr;
}

describe('agent forwarding link (run by /bin/sh)', () => {
  let dir: string;
  let home: string;
  const servers: Server[] = [];
  const socket = async (name: string): Promise<string> => {
    const file = path.join(dir, name);
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(file, () => resolve()));
    return file;
  };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-agentlink-'));
    home = path.join(dir, 'home');
    fs.mkdirSync(home);
  });
  afterEach(() => {
    for (const server of servers.splice(0)) server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('links ~/.tether/agent/<id>.sock (directory mode 700) to the forwarded socket, and re-points it', async () => {
    const id = newSessionId();
    const first = await socket('agent.1');
    const second = await socket('agent.2');
    assert.equal(parseAgentLinkOutput(run(agentLinkScript(id), { HOME: home, SSH_AUTH_SOCK: first })), 'linked');
    const link = path.join(home, '.tether', 'agent', `${id}.sock`);
    assert.equal(fs.readlinkSync(link), first);
    assert.equal(fs.statSync(path.dirname(link)).mode & 0o777, 0o700);
    assert.equal(parseAgentLinkOutput(run(agentLinkScript(id), { HOME: home, SSH_AUTH_SOCK: second })), 'linked');
    assert.equal(fs.readlinkSync(link), second);
    assert.deepEqual(fs.readdirSync(path.dirname(link)), [`${id}.sock`], 'no temporary links left');
  });

  it('tightens a directory that exists with a looser mode', async () => {
    fs.mkdirSync(path.join(home, '.tether', 'agent'), { recursive: true, mode: 0o755 });
    run(agentLinkScript(newSessionId()), { HOME: home, SSH_AUTH_SOCK: await socket('agent') });
    assert.equal(fs.statSync(path.join(home, '.tether', 'agent')).mode & 0o777, 0o700);
  });

  it('says no-agent, and links nothing, without a forwarded socket', () => {
    const id = newSessionId();
    assert.equal(parseAgentLinkOutput(run(agentLinkScript(id), { HOME: home })), 'no-agent');
    assert.equal(parseAgentLinkOutput(run(agentLinkScript(id), { HOME: home, SSH_AUTH_SOCK: path.join(dir, 'missing') })), 'no-agent');
    assert.equal(fs.existsSync(path.join(home, '.tether', 'agent')), false);
  });

  it('refuses a malformed session id', () => {
    assert.throws(() => agentLinkScript('../../etc'));
  });

  it('the session shell gets the stable path only when the link exists, and the link goes with the session', async () => {
    const id = newSessionId();
    const fakeShell = path.join(dir, 'fake-shell');
    fs.writeFileSync(fakeShell, '#!/bin/sh\necho "sock=${SSH_AUTH_SOCK-unset}"\n', { mode: 0o755 });
    const shell = (env: Record<string, string>): string =>
      spawnSync('/bin/sh', ['-c', innerShellCommand(), 'tether', id], { env: { PATH: process.env.PATH, HOME: home, SHELL: fakeShell, ...env }, encoding: 'utf8' }).stdout;
    assert.equal(shell({ SSH_AUTH_SOCK: '/host/agent' }), 'sock=/host/agent\n', 'no link: the host\'s own agent is left alone');
    run(agentLinkScript(id), { HOME: home, SSH_AUTH_SOCK: await socket('agent') });
    const link = path.join(home, '.tether', 'agent', `${id}.sock`);
    assert.equal(shell({ SSH_AUTH_SOCK: '/tmp/ssh-x/agent.1' }), `sock=${link}\n`);
    assert.equal(fs.existsSync(link), false, 'removed when the shell exits');
  });
});
