import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  checkHostKey,
  fingerprintSha256,
  hostMatches,
  hostPatternFor,
  knownKeyTypesFor,
  parseKnownHosts,
} from '../../../src/ssh/knownHosts';

interface TestKey {
  type: string;
  base64: string;
  blob: Buffer;
  pubPath: string;
}

/** A real key pair from ssh-keygen, so parsing and fingerprints are checked against OpenSSH. */
function generateKey(dir: string, name: string, type = 'ed25519'): TestKey {
  const file = path.join(dir, name);
  const args = ['-q', '-t', type, '-f', file, '-N', '', '-C', `${name}@test`];
  if (type === 'rsa') args.push('-b', '2048');
  execFileSync('ssh-keygen', args);
  const [keyType, base64] = fs.readFileSync(`${file}.pub`, 'utf8').trim().split(' ');
  return { type: keyType, base64, blob: Buffer.from(base64, 'base64'), pubPath: `${file}.pub` };
}

function line(patterns: string, key: TestKey, marker = ''): string {
  return `${marker ? `${marker} ` : ''}${patterns} ${key.type} ${key.base64} comment here`;
}

/** ssh-keygen -F exits 0 when a known_hosts file has an entry for the name. */
function opensshFinds(file: string, name: string): boolean {
  return spawnSync('ssh-keygen', ['-F', name, '-f', file], { stdio: 'ignore' }).status === 0;
}

describe('knownHosts', () => {
  let dir: string;
  let a: TestKey;
  let b: TestKey;
  let ecdsa: TestKey;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-known-hosts-'));
    a = generateKey(dir, 'a');
    b = generateKey(dir, 'b');
    ecdsa = generateKey(dir, 'c', 'ecdsa');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('fingerprintSha256', () => {
    it('matches ssh-keygen -l for ed25519, ecdsa and rsa keys', () => {
      const rsa = generateKey(dir, 'r', 'rsa');
      for (const key of [a, ecdsa, rsa]) {
        const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', key.pubPath], { encoding: 'utf8' }).split(' ')[1];
        assert.match(printed, /^SHA256:[A-Za-z0-9+/]{43}$/);
        assert.equal(fingerprintSha256(key.blob), printed);
      }
    });
  });

  describe('hostPatternFor', () => {
    it('uses the bare host on port 22 and [host]:port elsewhere', () => {
      assert.equal(hostPatternFor('build-1', 22), 'build-1');
      assert.equal(hostPatternFor('10.0.0.5', 2222), '[10.0.0.5]:2222');
      assert.equal(hostPatternFor('::1', 2200), '[::1]:2200');
    });
  });

  describe('parseKnownHosts', () => {
    it('reads plain, marked and hashed lines and skips comments, blanks and bad lines', () => {
      const text = [
        '# a comment',
        '',
        '   ',
        line('build-1,10.0.0.5', a),
        `\t${line('[web]:2222', b)}\r`,
        line('*', b, '@revoked'),
        line('*.example.com', ecdsa, '@cert-authority'),
        line('x', a, '@bogus'), // unknown marker
        'onlyhost',
        'host ssh-ed25519', // truncated
        'host ssh-ed25519 !!!notbase64!!!',
        `host ssh-rsa ${a.base64}`, // blob says ed25519
        '1024 35 1234567890 rsa1-line',
        `|1|${Buffer.alloc(20, 1).toString('base64')}|${Buffer.alloc(20, 2).toString('base64')} ${a.type} ${a.base64}`,
      ].join('\n');
      const entries = parseKnownHosts(text);
      assert.deepEqual(
        entries.map((e) => [e.marker, e.patterns, e.keyType]),
        [
          [undefined, 'build-1,10.0.0.5', 'ssh-ed25519'],
          [undefined, '[web]:2222', 'ssh-ed25519'],
          ['revoked', '*', 'ssh-ed25519'],
          ['cert-authority', '*.example.com', ecdsa.type],
          [undefined, entries[4]?.patterns, 'ssh-ed25519'],
        ],
      );
      assert.ok(entries[4].patterns.startsWith('|1|'));
      assert.equal(entries[0].keyBase64, a.base64);
    });
  });

  describe('checkHostKey', () => {
    it('matches comma lists, wildcards and negations, case-insensitively', () => {
      const entries = parseKnownHosts([line('build-1,10.0.0.5', a), line('*.example.com,!bad.example.com', a), line('web?', a)].join('\n'));
      assert.equal(checkHostKey(entries, '10.0.0.5', 22, a.blob).status, 'match');
      assert.equal(checkHostKey(entries, 'BUILD-1', 22, a.blob).status, 'match');
      assert.equal(checkHostKey(entries, 'x.example.com', 22, a.blob).status, 'match');
      assert.equal(checkHostKey(entries, 'bad.example.com', 22, a.blob).status, 'unknown');
      assert.equal(checkHostKey(entries, 'web1', 22, a.blob).status, 'match');
      assert.equal(checkHostKey(entries, 'web', 22, a.blob).status, 'unknown');
      assert.equal(checkHostKey(entries, 'web12', 22, a.blob).status, 'unknown');
    });

    it('keeps ports apart: [host]:port entries only match that port', () => {
      const entries = parseKnownHosts([line('[build-1]:2222', a), line('build-1', b)].join('\n'));
      assert.equal(checkHostKey(entries, 'build-1', 2222, a.blob).status, 'match');
      assert.equal(checkHostKey(entries, 'build-1', 22, b.blob).status, 'match');
      assert.equal(checkHostKey(entries, 'build-1', 22, a.blob).status, 'mismatch');
      assert.equal(checkHostKey(entries, 'build-1', 2200, a.blob).status, 'unknown');
    });

    it('agrees with ssh-keygen -F on which names a pattern line covers', () => {
      const file = path.join(dir, 'patterns');
      fs.writeFileSync(file, [line('*.example.com,!bad.example.com', a), line('web?', a), line('[*.x]:2222', a), line('10.0.0.*', a)].join('\n') + '\n');
      const entries = parseKnownHosts(fs.readFileSync(file, 'utf8'));
      const names = ['a.example.com', 'bad.example.com', 'web1', 'web', 'web12', '[a.x]:2222', 'a.x', '[a.x]:22', '10.0.0.9', '10.0.1.9'];
      for (const name of names) {
        const ours = entries.some((e) => hostMatches(e.patterns, name));
        assert.equal(ours, opensshFinds(file, name), name);
      }
    });

    it('matches entries hashed by ssh-keygen -H, and only for the right names', () => {
      const file = path.join(dir, 'hashed');
      fs.writeFileSync(file, [line('build-1', a), line('[10.0.0.5]:2222', b), line('db.internal', ecdsa)].join('\n') + '\n');
      execFileSync('ssh-keygen', ['-q', '-H', '-f', file], { stdio: 'pipe' });
      const text = fs.readFileSync(file, 'utf8');
      assert.doesNotMatch(text, /build-1|10\.0\.0\.5|db\.internal/);
      const entries = parseKnownHosts(text);
      assert.equal(entries.length, 3);
      assert.ok(entries.every((e) => e.patterns.startsWith('|1|')));

      assert.equal(checkHostKey(entries, 'build-1', 22, a.blob).status, 'match');
      assert.equal(checkHostKey(entries, '10.0.0.5', 2222, b.blob).status, 'match');
      assert.equal(checkHostKey(entries, 'db.internal', 22, ecdsa.blob).status, 'match');
      assert.equal(checkHostKey(entries, '10.0.0.5', 22, b.blob).status, 'unknown');
      assert.equal(checkHostKey(entries, 'build-2', 22, a.blob).status, 'unknown');
      const changed = checkHostKey(entries, 'build-1', 22, b.blob);
      assert.equal(changed.status, 'mismatch');
      assert.deepEqual(changed.knownFingerprints, [fingerprintSha256(a.blob)]);
      for (const name of ['build-1', '[10.0.0.5]:2222', 'build-2', '10.0.0.5']) {
        assert.equal(entries.some((e) => hostMatches(e.patterns, name)), opensshFinds(file, name), name);
      }
    });

    it('reports a different key of any type as a mismatch, as OpenSSH does', () => {
      const entries = parseKnownHosts(line('build-1', ecdsa));
      const result = checkHostKey(entries, 'build-1', 22, a.blob);
      assert.equal(result.status, 'mismatch');
      assert.deepEqual(result.knownFingerprints, [fingerprintSha256(ecdsa.blob)]);
      assert.deepEqual(knownKeyTypesFor(entries, 'build-1', 22), [ecdsa.type]);
      assert.deepEqual(knownKeyTypesFor(entries, 'other', 22), []);
    });

    it('matches when one of several keys for the host is the presented one', () => {
      const entries = parseKnownHosts([line('build-1', b), line('build-1', a)].join('\n'));
      assert.equal(checkHostKey(entries, 'build-1', 22, a.blob).status, 'match');
    });

    it('lets @revoked win over a matching entry', () => {
      const entries = parseKnownHosts([line('build-1', a), line('other-host', a, '@revoked')].join('\n'));
      assert.equal(checkHostKey(entries, 'build-1', 22, a.blob).status, 'revoked');
      assert.equal(checkHostKey(entries, 'build-1', 22, b.blob).status, 'mismatch');
    });

    it('ignores @cert-authority lines for plain keys', () => {
      const entries = parseKnownHosts(line('*', a, '@cert-authority'));
      assert.deepEqual(checkHostKey(entries, 'build-1', 22, a.blob), { status: 'unknown', knownFingerprints: [] });
      assert.equal(checkHostKey(entries, 'build-1', 22, b.blob).status, 'unknown');
    });
  });
});
