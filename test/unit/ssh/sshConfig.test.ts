import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  listConfiguredHosts,
  parseHostTarget,
  resolveHost,
  SshConfigError,
  type ResolvedHost,
  type SshConfigOptions,
} from '../../../src/ssh/sshConfig';

const HOME = '/home/alice';

function options(configText: string): SshConfigOptions {
  return { configText, homeDir: HOME, localUser: 'alice' };
}

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(SshConfigError.is(error), `expected SshConfigError, got ${String(error)}`);
    return error.reason;
  }
  assert.fail('expected an error');
}

function summary(host: ResolvedHost): string {
  return `${host.user}@${host.hostName}:${host.port}`;
}

describe('sshConfig', () => {
  describe('parseHostTarget', () => {
    it('parses host, user@host:port and bracketed IPv6 forms', () => {
      assert.deepEqual(parseHostTarget('build-1'), { host: 'build-1' });
      assert.deepEqual(parseHostTarget('alice@10.0.0.5:2222'), { user: 'alice', host: '10.0.0.5', port: 2222 });
      assert.deepEqual(parseHostTarget('user@[::1]:2222'), { user: 'user', host: '::1', port: 2222 });
      assert.deepEqual(parseHostTarget('[::1]'), { host: '::1' });
      assert.deepEqual(parseHostTarget('fe80::1%eth0'), { host: 'fe80::1%eth0' });
      assert.deepEqual(parseHostTarget('first.last@corp@jump.example.com'), { user: 'first.last@corp', host: 'jump.example.com' });
      assert.deepEqual(parseHostTarget('ssh://bob@db:2200'), { user: 'bob', host: 'db', port: 2200 });
    });

    it('rejects empty, hostile and malformed targets', () => {
      const hostile = [
        '',
        ' build-1',
        'build-1 ',
        'host;rm -rf /',
        'host;rm',
        '-oProxyCommand=touch /tmp/pwned',
        'alice@-oProxyCommand=x',
        '-lroot@host',
        'host\nother',
        'host\r',
        'ho\u0000st',
        'ho\tst',
        'host:0',
        'host:65536',
        'host:22x',
        'host:',
        'host:-1',
        '@host',
        'alice@',
        '[::1',
        '[::1]x',
        '[]',
        'a$(reboot)',
        'a`id`',
        'host|cat',
        'bad user@host',
        "o'neil@host",
        'ho*st',
        'h?st',
      ];
      for (const input of hostile) {
        assert.equal(reasonOf(() => parseHostTarget(input)), 'invalid-target', JSON.stringify(input));
      }
    });

    it('rejects typed targets in resolveHost before reading the config', () => {
      assert.equal(reasonOf(() => resolveHost('-oProxyCommand=sh', options('Host *\n  User x\n'))), 'invalid-target');
    });
  });

  describe('resolveHost', () => {
    const config = `
# global defaults come first only if written first
Host build-1
  HostName 10.0.0.5
  User builder
  Port 2201
  IdentityFile ~/.ssh/build_key
  IdentityFile %d/keys/%u-%r@%h:%p
  IdentitiesOnly yes

Host build-* !build-bad
  User wild
  Port 2300
  IdentityFile ~/.ssh/wild_key

Host *.corp
  HostName %h.internal.example
  UserKnownHostsFile ~/.ssh/corp_known_hosts /etc/corp_hosts

Host BigCase
  HostName Big.Example.COM

Host *
  User fallback
  IdentityFile ~/.ssh/everyone
`;

    it('resolves an alias with first-match-wins ordering like OpenSSH', () => {
      const host = resolveHost('build-1', options(config));
      assert.equal(host.label, 'build-1');
      assert.equal(summary(host), 'builder@10.0.0.5:2201');
      assert.deepEqual(host.identityFiles, [
        `${HOME}/.ssh/build_key`,
        `${HOME}/keys/alice-builder@10.0.0.5:2201`,
        `${HOME}/.ssh/wild_key`,
        `${HOME}/.ssh/everyone`,
      ]);
      assert.equal(host.identitiesOnly, true);
      assert.deepEqual(host.knownHostsFiles, [`${HOME}/.ssh/known_hosts`, `${HOME}/.ssh/known_hosts2`]);
      assert.deepEqual(host.proxyJump, []);
    });

    it('applies wildcard sections and honours negations', () => {
      assert.equal(summary(resolveHost('build-7', options(config))), 'wild@build-7:2300');
      const bad = resolveHost('build-bad', options(config));
      assert.equal(summary(bad), 'fallback@build-bad:22');
      assert.deepEqual(bad.identityFiles, [`${HOME}/.ssh/everyone`]);
      assert.equal(bad.identitiesOnly, false);
    });

    it('expands %h in HostName and takes UserKnownHostsFile lists', () => {
      const host = resolveHost('db.corp', options(config));
      assert.equal(host.hostName, 'db.corp.internal.example');
      assert.deepEqual(host.knownHostsFiles, [`${HOME}/.ssh/corp_known_hosts`, '/etc/corp_hosts']);
    });

    it('lower-cases the host name and matches Host patterns as written, as ssh does', () => {
      assert.equal(resolveHost('BigCase', options(config)).hostName, 'big.example.com');
      assert.equal(resolveHost('BIGCASE', options(config)).hostName, 'bigcase');
    });

    it('lets a typed user and port override the config', () => {
      const host = resolveHost('root@build-1:2022', options(config));
      assert.equal(host.label, 'root@build-1:2022');
      assert.equal(summary(host), 'root@10.0.0.5:2022');
      assert.ok(host.identityFiles.includes(`${HOME}/keys/alice-root@10.0.0.5:2022`));
    });

    it('resolves unknown hosts with OpenSSH defaults', () => {
      const host = resolveHost('10.1.2.3', options(''));
      assert.equal(summary(host), 'alice@10.1.2.3:22');
      assert.deepEqual(host.identityFiles, [`${HOME}/.ssh/id_ed25519`, `${HOME}/.ssh/id_ecdsa`, `${HOME}/.ssh/id_rsa`]);
      assert.deepEqual(host.knownHostsFiles, [`${HOME}/.ssh/known_hosts`, `${HOME}/.ssh/known_hosts2`]);
      assert.equal(host.identitiesOnly, false);
    });

    it('handles IdentityFile none and UserKnownHostsFile none', () => {
      const host = resolveHost('x', options('Host x\n  IdentityFile none\n  UserKnownHostsFile none\n'));
      assert.deepEqual(host.identityFiles, []);
      assert.deepEqual(host.knownHostsFiles, []);
    });

    it('reads the config from configPath, and treats a missing file as empty', () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-ssh-config-'));
      try {
        const file = path.join(dir, 'config');
        fs.writeFileSync(file, 'Host a\n  HostName a.example\n');
        assert.equal(resolveHost('a', { configPath: file, homeDir: HOME, localUser: 'alice' }).hostName, 'a.example');
        assert.equal(resolveHost('a', { configPath: path.join(dir, 'missing'), homeDir: HOME, localUser: 'alice' }).hostName, 'a');
        assert.equal(resolveHost('a', { homeDir: dir, localUser: 'alice' }).hostName, 'a'); // no ~/.ssh/config
        assert.equal(reasonOf(() => resolveHost('a', { configPath: dir, homeDir: HOME, localUser: 'alice' })), 'unreadable');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('reports unparseable config and bad values as unreadable', () => {
      assert.equal(reasonOf(() => resolveHost('a', options('Host a\n  HostName "unterminated\n'))), 'unreadable');
      assert.equal(reasonOf(() => resolveHost('a', options('Host a\n  Port 0x10\n'))), 'unreadable');
    });

    it('never runs Match exec commands', () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-ssh-exec-'));
      try {
        const marker = path.join(dir, 'ran');
        const host = resolveHost('a', options(`Match exec "touch ${marker}"\n  User executed\nHost *\n  User plain\n`));
        assert.equal(host.user, 'plain');
        assert.equal(fs.existsSync(marker), false);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('evaluates Match host, originalhost and user', () => {
      const text = 'Host a\n  HostName a.example\nMatch host *.example user alice\n  Port 2000\nMatch originalhost a\n  User from-match\n';
      const host = resolveHost('a', options(text));
      assert.equal(summary(host), 'from-match@a.example:2000');
      assert.equal(resolveHost('bob@a', options(text)).port, 22); // Match user sees the typed user
    });
  });

  describe('keywords for reaching hosts (issue 20)', () => {
    const config = `
Host ca-host
  HostName ca.example
  CertificateFile ~/.ssh/id_ed25519-cert.pub
  CertificateFile %d/certs/%r-cert.pub
  IdentityAgent ~/Library/agent.sock
  ForwardAgent yes
  ConnectTimeout 7
  ServerAliveInterval 15
  ServerAliveCountMax 4
  StrictHostKeyChecking accept-new
  HostKeyAlias ca-alias
  LocalForward 8080 localhost:80
  SendEnv LANG
  LogLevel DEBUG
Host pc
  ProxyCommand ssh -W %h:%p bastion
  ProxyJump other
Host env-agent
  IdentityAgent $OP_AGENT
  ForwardAgent $FWD_SOCK
  StrictHostKeyChecking no
Host none-agent
  IdentityAgent none
  ForwardAgent no
  StrictHostKeyChecking yes
Host bad-timeout
  ConnectTimeout soon
Host bad-strict
  StrictHostKeyChecking maybe
`;
    it('reads CertificateFile, IdentityAgent, ForwardAgent, timeouts, StrictHostKeyChecking and HostKeyAlias', () => {
      const host = resolveHost('ca-host', options(config));
      assert.deepEqual(host.certificateFiles, [`${HOME}/.ssh/id_ed25519-cert.pub`, `${HOME}/certs/alice-cert.pub`]);
      assert.equal(host.identityAgent, `${HOME}/Library/agent.sock`);
      assert.equal(host.forwardAgent, true);
      assert.equal(host.connectTimeoutSeconds, 7);
      assert.equal(host.serverAliveIntervalSeconds, 15);
      assert.equal(host.serverAliveCountMax, 4);
      assert.equal(host.strictHostKeyChecking, 'accept-new');
      assert.equal(host.hostKeyAlias, 'ca-alias');
    });

    it('lists the keywords it ignores (but not the ones that change nothing for a tab)', () => {
      assert.deepEqual(resolveHost('ca-host', options(config)).ignoredKeywords, ['localforward', 'sendenv']);
      assert.equal(resolveHost('none-agent', options(config)).ignoredKeywords, undefined);
    });

    it('keeps the first of ProxyCommand and ProxyJump, as ssh does', () => {
      const host = resolveHost('pc', options(config));
      assert.equal(host.proxyCommand, 'ssh -W %h:%p bastion');
      assert.deepEqual(host.proxyJump, []);
    });

    it('keeps $VAR agents for connect time; reads none, no and yes', () => {
      const env = resolveHost('env-agent', options(config));
      assert.equal(env.identityAgent, '$OP_AGENT');
      assert.equal(env.forwardAgent, '$FWD_SOCK');
      assert.equal(env.strictHostKeyChecking, 'accept-new', '"no" never accepts a changed key in Tether');
      const none = resolveHost('none-agent', options(config));
      assert.equal(none.identityAgent, 'none');
      assert.equal(none.forwardAgent, false);
      assert.equal(none.strictHostKeyChecking, 'yes');
      const plain = resolveHost('plain.example', options(config));
      assert.equal(plain.forwardAgent, undefined, 'unset: the tether.forwardAgent setting decides');
      assert.equal(plain.identityAgent, undefined);
      assert.equal(plain.connectTimeoutSeconds, undefined);
    });

    it('rejects malformed numbers and StrictHostKeyChecking values with a clear error', () => {
      assert.equal(reasonOf(() => resolveHost('bad-timeout', options(config))), 'unreadable');
      assert.equal(reasonOf(() => resolveHost('bad-strict', options(config))), 'unreadable');
    });
  });

  describe('ProxyJump', () => {
    const config = `
Host target
  HostName 10.0.0.9
  ProxyJump bastion

Host bastion
  HostName bastion.example.com
  User jumper
  Port 2200
  IdentityFile ~/.ssh/bastion_key

Host inner
  HostName inner.example.com
  ProxyJump bastion

Host deep
  ProxyJump inner

Host multi
  ProxyJump carol@bastion:2222,inner,10.0.0.1

Host none-jump
  ProxyJump none
  ProxyJump bastion

Host loop-a
  ProxyJump loop-b
Host loop-b
  ProxyJump loop-a

Host self
  ProxyJump self

Host via-self
  ProxyJump bastion,via-self
`;

    it('resolves a hop through the config with its own user, port and keys', () => {
      const host = resolveHost('target', options(config));
      assert.equal(host.proxyJump.length, 1);
      const [hop] = host.proxyJump;
      assert.equal(hop.label, 'bastion');
      assert.equal(summary(hop), 'jumper@bastion.example.com:2200');
      assert.deepEqual(hop.identityFiles, [`${HOME}/.ssh/bastion_key`]);
      assert.deepEqual(hop.proxyJump, []);
    });

    it("flattens the first hop's own ProxyJump in front of it", () => {
      const host = resolveHost('deep', options(config));
      assert.deepEqual(host.proxyJump.map((h) => h.label), ['bastion', 'inner']);
      assert.ok(host.proxyJump.every((h) => h.proxyJump.length === 0));
    });

    it("takes comma-separated hops in order, with typed user/port overrides and later hops' jumps ignored", () => {
      const host = resolveHost('multi', options(config));
      assert.deepEqual(host.proxyJump.map(summary), ['carol@bastion.example.com:2222', 'alice@inner.example.com:22', 'alice@10.0.0.1:22']);
      assert.deepEqual(host.proxyJump.map((h) => h.label), ['carol@bastion:2222', 'inner', '10.0.0.1']);
    });

    it('treats none as no jump, and the first ProxyJump as the one that counts', () => {
      assert.deepEqual(resolveHost('none-jump', options(config)).proxyJump, []);
    });

    it('rejects cycles', () => {
      assert.equal(reasonOf(() => resolveHost('loop-a', options(config))), 'proxy-loop');
      assert.equal(reasonOf(() => resolveHost('self', options(config))), 'proxy-loop');
      assert.equal(reasonOf(() => resolveHost('via-self', options(config))), 'proxy-loop');
      assert.equal(reasonOf(() => resolveHost('anything', options('Host *\n  ProxyJump bastion\n'))), 'proxy-loop');
      assert.match(String(captureError(() => resolveHost('loop-a', options(config)))), /loop-a -> loop-b -> loop-a/);
    });

    it('rejects hostile hops', () => {
      assert.equal(reasonOf(() => resolveHost('x', options('Host x\n  ProxyJump -oProxyCommand=sh\n'))), 'invalid-target');
      assert.equal(reasonOf(() => resolveHost('x', options('Host x\n  ProxyJump a,,b\n'))), 'invalid-target');
    });

    it('keeps ProxyCommand (first of the two wins) so callers can refuse it', () => {
      const text = 'Host pc\n  ProxyCommand nc %h %p\n  ProxyJump bastion\n';
      const host = resolveHost('pc', options(text));
      assert.equal(host.proxyCommand, 'nc %h %p');
      assert.deepEqual(host.proxyJump, []);
    });
  });

  describe('Include', () => {
    let home: string;
    before(() => {
      home = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-ssh-include-'));
      fs.mkdirSync(path.join(home, '.ssh', 'conf.d'), { recursive: true });
      fs.writeFileSync(path.join(home, '.ssh', 'conf.d', '10-web.conf'), 'Host web\n  HostName web.example\n  User webber\n');
      fs.writeFileSync(path.join(home, '.ssh', 'conf.d', '20-db.conf'), 'Host db\n  HostName db.example\nHost web\n  User late\n');
      fs.writeFileSync(path.join(home, '.ssh', 'conf.d', 'ignored.txt'), 'Host ignored\n');
      fs.writeFileSync(path.join(home, '.ssh', 'port.conf'), 'Port 2222\n');
      fs.writeFileSync(path.join(home, '.ssh', 'loop.conf'), 'Include loop.conf\n');
    });
    after(() => fs.rmSync(home, { recursive: true, force: true }));

    const opts = (configText: string): SshConfigOptions => ({ configText, homeDir: home, localUser: 'alice' });

    it('includes files relative to ~/.ssh, globbing * in sorted order', () => {
      const text = 'Include conf.d/*.conf ~/.ssh/missing.conf\nHost *\n  User fallback\n';
      assert.equal(summary(resolveHost('web', opts(text))), 'webber@web.example:22');
      assert.equal(summary(resolveHost('db', opts(text))), 'fallback@db.example:22');
      assert.deepEqual(listConfiguredHosts(opts(text)), ['web', 'db']);
    });

    it('applies an Include inside a Host block only to that host', () => {
      const text = 'Host special\n  Include port.conf\nHost *\n  Port 2000\n';
      assert.equal(resolveHost('special', opts(text)).port, 2222);
      assert.equal(resolveHost('other', opts(text)).port, 2000);
    });

    it('stops Include loops', () => {
      assert.equal(reasonOf(() => resolveHost('x', opts('Include loop.conf\n'))), 'unreadable');
    });
  });

  describe('listConfiguredHosts', () => {
    it('lists concrete aliases in file order, deduplicated, without patterns', () => {
      const text = 'Host a b\n  User x\nHost *.corp !c\nHost c a\nHost web?\nMatch host d\n  User y\nHost "e"\n';
      assert.deepEqual(listConfiguredHosts(options(text)), ['a', 'b', 'c', 'e']);
    });
  });

  describe('against ssh -G', function () {
    const hasSsh = spawnSync('ssh', ['-V']).status === 0;
    let dir: string;
    let file: string;
    before(function () {
      if (!hasSsh) this.skip();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-ssh-g-'));
      file = path.join(dir, 'config');
      fs.writeFileSync(path.join(dir, 'extra.conf'), 'Host included\n  HostName inc.example\n  Port 2444\n');
      fs.writeFileSync(
        file,
        `Include ${dir}/extra.conf
Host build-1
  HostName 10.0.0.5
  User builder
  Port 2201
Host build-* !build-bad
  User wild
  Port 2300
Host *.corp
  HostName %h.internal.example
Host web?
  HostName webq.example
Host Mixed
  HostName Mixed.Example.COM
Host chain
  ProxyJump carol@build-1:2022,build-7
Match originalhost matched
  User via-match
Match host *.internal.example
  Port 2600
Host *
  User fallback
`,
      );
    });
    after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

    function sshG(target: string): Record<string, string> {
      const out = spawnSync('ssh', ['-G', '-F', file, target], { encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      const values: Record<string, string> = {};
      for (const row of out.stdout.split('\n')) {
        const space = row.indexOf(' ');
        if (space > 0 && !(row.slice(0, space) in values)) values[row.slice(0, space)] = row.slice(space + 1);
      }
      return values;
    }

    it('agrees on hostname, user and port', () => {
      const local = os.userInfo().username;
      const targets = [
        'build-1',
        'build-7',
        'build-bad',
        'db.corp',
        'web1',
        'web',
        'Mixed',
        'MIXED',
        'included',
        'matched',
        'plain.example.org',
        'ssh://root@build-1:2022',
        'ssh://build-9:2999',
      ];
      for (const target of targets) {
        const ours = resolveHost(target, { configPath: file, homeDir: os.homedir(), localUser: local });
        const theirs = sshG(target);
        assert.equal(summary(ours), `${theirs.user}@${theirs.hostname}:${theirs.port}`, target);
      }
    });

    it('agrees on ProxyJump hops', () => {
      const local = os.userInfo().username;
      const ours = resolveHost('chain', { configPath: file, homeDir: os.homedir(), localUser: local });
      assert.equal(sshG('chain').proxyjump, ours.proxyJump.map((h) => h.label).join(','));
      for (const hop of ours.proxyJump) {
        const target = parseHostTargetAsUri(hop.label);
        const theirs = sshG(target);
        assert.equal(summary(hop), `${theirs.user}@${theirs.hostname}:${theirs.port}`, hop.label);
      }
    });
  });
});

function captureError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** ssh takes user@host:port only as an ssh:// URI. */
function parseHostTargetAsUri(label: string): string {
  return `ssh://${label}`;
}
