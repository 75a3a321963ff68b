import assert from 'node:assert/strict';
import { HostFact, HostFacts } from '../../../src/ssh/hostFacts';
import type { ResolvedHost } from '../../../src/ssh/sshConfig';

const host = (hostName: string): ResolvedHost => ({ label: hostName, hostName, user: 'alice', port: 22, identityFiles: [], identitiesOnly: false, knownHostsFiles: [], proxyJump: [] });
const VERSION = new HostFact<string>('version');
const SHELL = new HostFact<string>('shell');

describe('host facts (what a pool has learned per host)', () => {
  const facts = (): HostFacts => new HostFacts((resolved) => `${resolved.user}@${resolved.hostName}:${resolved.port}`);

  it('asks once per host and fact; callers that come while it is asked share the answer', async () => {
    const known = facts();
    let asked = 0;
    const ask = async (): Promise<string> => {
      asked++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return '3.3a';
    };
    const answers = await Promise.all([known.learn(host('a'), VERSION, ask), known.learn(host('a'), VERSION, ask)]);
    assert.deepEqual(answers, ['3.3a', '3.3a']);
    assert.equal(await known.learn(host('a'), VERSION, ask), '3.3a');
    assert.equal(asked, 1);
    await known.learn(host('b'), VERSION, ask);
    await known.learn(host('a'), SHELL, async () => 'sh');
    assert.equal(asked, 2, 'another host is asked on its own; another fact does not touch this one');
  });

  it('keeps no failed answer, forgets on request, and peeks without asking', async () => {
    const known = facts();
    assert.equal(known.peek(host('a'), VERSION), undefined);
    await assert.rejects(known.learn(host('a'), VERSION, async () => {
      throw new Error('host unreachable');
    }));
    assert.equal(known.peek(host('a'), VERSION), undefined, 'a failure is not kept');
    assert.equal(await known.learn(host('a'), VERSION, async () => '3.2'), '3.2');
    assert.equal(await known.peek(host('a'), VERSION), '3.2');
    known.forget(host('a'), VERSION);
    assert.equal(await known.learn(host('a'), VERSION, async () => '3.4'), '3.4', 'asked again after forget');
  });

  it("is one pool's: another HostFacts knows nothing of it", async () => {
    const first = facts();
    await first.learn(host('a'), VERSION, async () => '3.3a');
    assert.equal(facts().peek(host('a'), VERSION), undefined);
  });
});
