import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHostKeyCheck, HostKeyError, type HostKeyPromptInfo, type HostKeyVerifierOptions } from '../../../src/ssh/hostKeyVerifier';
import { fingerprintSha256 } from '../../../src/ssh/knownHosts';
import { TrustStore, TrustStoreError } from '../../../src/ssh/trustStore';

interface TestKey {
  type: string;
  base64: string;
  blob: Buffer;
  pubPath: string;
}

function generateKey(dir: string, name: string): TestKey {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-f', file, '-N', '', '-C', name]);
  const [type, base64] = fs.readFileSync(`${file}.pub`, 'utf8').trim().split(' ');
  return { type, base64, blob: Buffer.from(base64, 'base64'), pubPath: `${file}.pub` };
}

/** Runs one verification the way ssh2 would and returns what the callback got. */
function verify(options: HostKeyVerifierOptions, key: Buffer): Promise<{ ok: boolean; failure: HostKeyError | undefined; calls: number }> {
  const check = createHostKeyCheck(options);
  return new Promise((resolve) => {
    let calls = 0;
    check.verify(key, (ok) => {
      calls++;
      // Let any erroneous second callback arrive before reporting.
      setImmediate(() => resolve({ ok, failure: check.failure, calls }));
    });
  });
}

describe('TrustStore', () => {
  let dir: string;
  let a: TestKey;
  let b: TestKey;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-trust-'));
    a = generateKey(dir, 'a');
    b = generateKey(dir, 'b');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is empty when the file does not exist', () => {
    assert.deepEqual(new TrustStore(path.join(dir, 'none', 'trusted_hosts')).entries(), []);
  });

  it('creates its directory and writes a mode-600 known_hosts file that OpenSSH can read', () => {
    const file = path.join(dir, 'nested', 'state', 'trusted_hosts');
    const store = new TrustStore(file);
    store.add('Build-1.Example', 22, a.blob);
    store.add('10.0.0.5', 2222, b.blob);
    store.add('10.0.0.5', 2222, b.blob); // already there: no duplicate
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(
      store.entries().map((e) => [e.patterns, e.keyType, e.keyBase64]),
      [
        ['build-1.example', a.type, a.base64],
        ['[10.0.0.5]:2222', b.type, b.base64],
      ],
    );
    assert.equal(spawnSync('ssh-keygen', ['-F', '[10.0.0.5]:2222', '-f', file], { stdio: 'ignore' }).status, 0);
    assert.equal(spawnSync('ssh-keygen', ['-F', '10.0.0.5', '-f', file], { stdio: 'ignore' }).status, 1);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['trusted_hosts']); // no temp files left behind
  });

  it('refuses host names that could inject lines or patterns', () => {
    const file = path.join(dir, 'hostile');
    const store = new TrustStore(file);
    for (const host of ['evil\n* ssh-ed25519 AAAA', '*', 'a,b', 'a b', '!x', '[x]:22', '|1|abc|def', '-x', '']) {
      assert.throws(() => store.add(host, 22, a.blob), (e: unknown) => TrustStoreError.is(e) && e.reason === 'invalid-host', JSON.stringify(host));
    }
    assert.throws(() => store.add('ok', 22, Buffer.from('junk')), (e: unknown) => TrustStoreError.is(e) && e.reason === 'invalid-key');
    assert.equal(fs.existsSync(file), false);
  });
});

describe('createHostKeyCheck', () => {
  let dir: string;
  let a: TestKey;
  let b: TestKey;
  let knownHosts: string;
  let storePath: string;
  let prompts: HostKeyPromptInfo[];

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-verifier-'));
    a = generateKey(dir, 'a');
    b = generateKey(dir, 'b');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  beforeEach(() => {
    const caseDir = fs.mkdtempSync(path.join(dir, 'case-'));
    knownHosts = path.join(caseDir, 'known_hosts');
    storePath = path.join(caseDir, 'tether', 'trusted_hosts');
    prompts = [];
  });

  function options(overrides: Partial<HostKeyVerifierOptions> = {}): HostKeyVerifierOptions {
    return {
      label: 'build-1',
      host: '10.0.0.5',
      port: 22,
      knownHostsFiles: [path.join(path.dirname(knownHosts), 'missing_known_hosts'), knownHosts],
      trustStore: new TrustStore(storePath),
      confirmUnknown: async (info) => {
        prompts.push(info);
        return true;
      },
      ...overrides,
    };
  }

  it('accepts a key listed in known_hosts without asking', async () => {
    fs.writeFileSync(knownHosts, `10.0.0.5 ${a.type} ${a.base64}\n`);
    const result = await verify(options(), a.blob);
    assert.deepEqual([result.ok, result.failure, result.calls], [true, undefined, 1]);
    assert.deepEqual(prompts, []);
  });

  it('accepts a key listed in a hashed known_hosts', async () => {
    fs.writeFileSync(knownHosts, `[10.0.0.5]:2222 ${a.type} ${a.base64}\n`);
    execFileSync('ssh-keygen', ['-q', '-H', '-f', knownHosts], { stdio: 'pipe' });
    assert.doesNotMatch(fs.readFileSync(knownHosts, 'utf8'), /10\.0\.0\.5/);
    assert.equal((await verify(options({ port: 2222 }), a.blob)).ok, true);
    assert.deepEqual(prompts, []);
  });

  it('asks about an unknown key, then remembers it in the trust store only', async () => {
    const first = await verify(options(), a.blob);
    assert.equal(first.ok, true);
    assert.deepEqual(prompts, [{ label: 'build-1', host: '10.0.0.5', port: 22, keyType: 'ssh-ed25519', fingerprint: fingerprintSha256(a.blob) }]);
    const printed = execFileSync('ssh-keygen', ['-l', '-f', a.pubPath], { encoding: 'utf8' }).split(' ')[1];
    assert.equal(prompts[0].fingerprint, printed);
    assert.equal(fs.existsSync(knownHosts), false); // the user's known_hosts is never written

    const second = await verify(options(), a.blob);
    assert.equal(second.ok, true);
    assert.equal(prompts.length, 1);
  });

  it('refuses when the user declines, and stores nothing', async () => {
    const result = await verify(options({ confirmUnknown: async () => false }), a.blob);
    assert.equal(result.ok, false);
    assert.ok(HostKeyError.is(result.failure));
    assert.equal(result.failure.reason, 'refused');
    assert.equal(result.failure.actual, fingerprintSha256(a.blob));
    assert.deepEqual(new TrustStore(storePath).entries(), []);
  });

  it('refuses when the prompt throws or rejects', async () => {
    const throwing = await verify(
      options({
        confirmUnknown: () => {
          throw new Error('no window');
        },
      }),
      a.blob,
    );
    assert.deepEqual([throwing.ok, throwing.failure?.reason, throwing.calls], [false, 'refused', 1]);
    const rejecting = await verify(options({ confirmUnknown: () => Promise.reject(new Error('dismissed')) }), a.blob);
    assert.deepEqual([rejecting.ok, rejecting.failure?.reason], [false, 'refused']);
    assert.match(rejecting.failure?.message ?? '', /dismissed/);
  });

  it('refuses a changed key with both fingerprints and where to fix it', async () => {
    fs.writeFileSync(knownHosts, `# mine\n10.0.0.5,build-1 ${a.type} ${a.base64}\n`);
    const result = await verify(options(), b.blob);
    assert.equal(result.ok, false);
    assert.deepEqual(prompts, []);
    const failure = result.failure;
    assert.ok(HostKeyError.is(failure));
    assert.equal(failure.reason, 'changed');
    assert.equal(failure.label, 'build-1');
    assert.deepEqual(failure.expected, [fingerprintSha256(a.blob)]);
    assert.equal(failure.actual, fingerprintSha256(b.blob));
    assert.equal(
      failure.message,
      `host key for build-1 (10.0.0.5:22) changed: expected ${fingerprintSha256(a.blob)}, got ${fingerprintSha256(b.blob)}; ` +
        `if the change is expected, remove the old key from ${knownHosts}`,
    );
  });

  it('refuses a key that differs from the one the user accepted in Tether', async () => {
    new TrustStore(storePath).add('10.0.0.5', 22, a.blob);
    const result = await verify(options(), b.blob);
    assert.deepEqual([result.ok, result.failure?.reason], [false, 'changed']);
    assert.match(result.failure?.message ?? '', /Tether's trust store/);
  });

  it('accepts when either source matches', async () => {
    fs.writeFileSync(knownHosts, `10.0.0.5 ${a.type} ${a.base64}\n`);
    new TrustStore(storePath).add('10.0.0.5', 22, b.blob);
    assert.equal((await verify(options(), b.blob)).ok, true);
    assert.equal((await verify(options(), a.blob)).ok, true);
  });

  it('refuses a revoked key even if it is also trusted', async () => {
    fs.writeFileSync(knownHosts, `@revoked * ${a.type} ${a.base64}\n`);
    new TrustStore(storePath).add('10.0.0.5', 22, a.blob);
    const result = await verify(options(), a.blob);
    assert.deepEqual([result.ok, result.failure?.reason], [false, 'revoked']);
    assert.deepEqual(prompts, []);
  });

  it('keeps ports apart', async () => {
    fs.writeFileSync(knownHosts, `[10.0.0.5]:2222 ${a.type} ${a.base64}\n`);
    assert.equal((await verify(options({ port: 2222 }), a.blob)).ok, true);
    assert.equal((await verify(options({ port: 22, confirmUnknown: async () => false }), a.blob)).failure?.reason, 'refused');
  });

  it('reads known_hosts through the injected reader', async () => {
    const read: string[] = [];
    const result = await verify(
      options({
        knownHostsFiles: ['/virtual/known_hosts'],
        readFile: (file) => {
          read.push(file);
          return `10.0.0.5 ${a.type} ${a.base64}\n`;
        },
      }),
      b.blob,
    );
    assert.deepEqual(read, ['/virtual/known_hosts']);
    assert.equal(result.failure?.reason, 'changed');
  });

  it('refuses a malformed key blob', async () => {
    const result = await verify(options(), Buffer.from([0, 0, 0, 99, 1, 2]));
    assert.deepEqual([result.ok, result.failure?.reason, prompts.length], [false, 'refused', 0]);
  });
});

describe('StrictHostKeyChecking', () => {
  let dir: string;
  let key: TestKey;
  let other: TestKey;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-strict-'));
    key = generateKey(dir, 'k');
    other = generateKey(dir, 'o');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const base = (store: TrustStore, asked: HostKeyPromptInfo[]): HostKeyVerifierOptions => ({
    label: 'h',
    host: 'h.example',
    port: 22,
    knownHostsFiles: [],
    trustStore: store,
    confirmUnknown: async (info) => (asked.push(info), true),
  });

  it('yes refuses an unknown key without asking', async () => {
    const asked: HostKeyPromptInfo[] = [];
    const store = new TrustStore(path.join(dir, 'yes'));
    const result = await verify({ ...base(store, asked), strict: 'yes' }, key.blob);
    assert.equal(result.ok, false);
    assert.equal(result.failure?.reason, 'refused');
    assert.match(result.failure?.message ?? '', /StrictHostKeyChecking is yes/);
    assert.deepEqual(asked, []);
    assert.deepEqual(store.entries(), []);
  });

  it('accept-new trusts an unknown key without asking and remembers it', async () => {
    const asked: HostKeyPromptInfo[] = [];
    const accepted: string[] = [];
    const store = new TrustStore(path.join(dir, 'new'));
    const result = await verify({ ...base(store, asked), strict: 'accept-new', onAcceptedNew: (info) => accepted.push(info.fingerprint) }, key.blob);
    assert.equal(result.ok, true);
    assert.deepEqual(asked, []);
    assert.deepEqual(accepted, [fingerprintSha256(key.blob)]);
    assert.equal(store.entries().length, 1);
  });

  it('refuses a changed key in every mode, without asking', async () => {
    for (const strict of ['yes', 'accept-new', 'ask'] as const) {
      const asked: HostKeyPromptInfo[] = [];
      const store = new TrustStore(path.join(dir, `changed-${strict}`));
      store.add('h.example', 22, key.blob);
      const result = await verify({ ...base(store, asked), strict }, other.blob);
      assert.equal(result.ok, false, strict);
      assert.equal(result.failure?.reason, 'changed', strict);
      assert.deepEqual(asked, [], strict);
    }
  });
});
