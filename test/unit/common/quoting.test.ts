import { strict as assert } from 'node:assert';
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAX_REMOTE_COMMAND_BYTES, shellJoin, shellQuote, wrapScript } from '../../../src/common/quoting';

/** Absolute path of a shell if it is installed here, else undefined. */
function findShell(name: string): string | undefined {
  for (const dir of ['/bin', '/usr/bin', '/usr/local/bin']) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The real shells that act as the oracle. /bin/sh is always there; bash and dash when installed. */
const POSIX_SHELLS = ['/bin/sh', findShell('bash'), findShell('dash')].filter((s): s is string => s !== undefined);
/** Non-POSIX login shells that only see wrapScript's one line; tested only where installed. */
const OTHER_LOGIN_SHELLS = ['fish', 'csh', 'tcsh', 'zsh', 'ksh'].map(findShell).filter((s): s is string => s !== undefined);

const SETSID = findShell('setsid');

const CANARY = 'CANARY';

/** Strings that would do harm (or lose bytes) if quoting were wrong. Many try to create ./CANARY. */
const HOSTILE: readonly string[] = [
  '',
  ' ',
  '  leading and trailing  ',
  '\t',
  'a b',
  `; touch ${CANARY}`,
  `a;touch ${CANARY}`,
  `$(touch ${CANARY})`,
  `\`touch ${CANARY}\``,
  `"$(touch ${CANARY})"`,
  `'$(touch ${CANARY})'`,
  `'; touch ${CANARY}; '`,
  `"; touch ${CANARY}; "`,
  `\\'; touch ${CANARY}; echo \\'`,
  `' "'" '`,
  `&& touch ${CANARY}`,
  `|| touch ${CANARY}`,
  `| touch ${CANARY}`,
  `& touch ${CANARY}`,
  `\ntouch ${CANARY}\n`,
  `\rtouch ${CANARY}`,
  `> ${CANARY}`,
  `< /etc/passwd > ${CANARY}`,
  `$(printf x > ${CANARY})`,
  `\${IFS}touch\${IFS}${CANARY}`,
  `$((1+1))`,
  `<(touch ${CANARY})`,
  `>(touch ${CANARY})`,
  'single \' quote',
  "'",
  "''",
  "'''",
  '"',
  '""',
  `it's "quoted" and 'again'`,
  '\\',
  '\\\\',
  '\\n',
  'trailing backslash \\',
  '\\\n',
  '\n',
  '\n\n\n',
  'line one\nline two',
  'trailing newlines\n\n',
  '\r\n',
  '$HOME',
  '${HOME}',
  '$1 $@ $* $# $? $$ $! $0 $-',
  '$',
  '*',
  '?',
  '[a-z]*',
  '/*',
  '{a,b}',
  '{1..3}',
  '~',
  '~root',
  '~/x',
  '#not a comment',
  'a#b',
  '!',
  '!!',
  '!$',
  '^foo^bar',
  '-',
  '--',
  '-n',
  '-e',
  '-rf',
  '--help',
  '-c',
  '=cmd',
  'a=b',
  'PATH=/nowhere',
  '%s%d%n',
  '%',
  '\x1b[31mred\x1b[0m',
  '\x1b]0;title\x07',
  '\x1bP+q544e\x1b\\',
  '\x07\x08\x7f',
  Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join(''),
  Array.from({ length: 95 }, (_, i) => String.fromCharCode(i + 32)).join(''),
  'é中文🙂👩‍👩‍👧',
  '\u202e' + 'txt.exe',
  'zero\u200bwidth',
  '\ufeffbom',
  '\u00a0nbsp',
  'x'.repeat(64 * 1024),
  `'`.repeat(4096),
  `$(touch ${CANARY})`.repeat(500),
];

/** Lone surrogates cannot be encoded; Node sends U+FFFD for them, and so must the round trip. */
const INVALID_UTF16: readonly string[] = ['\ud800', '\udfff', 'a\ud83db', '\ude00x\ud83d', '\ud83d\ud83d'];

describe('quoting', () => {
  let dir: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-quoting-'));
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function runShell(shell: string, command: string, input?: string | Buffer): SpawnSyncReturns<Buffer> {
    const result = spawnSync(shell, ['-c', command], {
      cwd: dir,
      input,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LC_ALL: 'C' },
      timeout: 10_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    assert.equal(result.error, undefined, `${shell} could not run: ${result.error?.message}`);
    return result;
  }

  function assertNoCanary(): void {
    assert.deepEqual(fs.readdirSync(dir), [], 'a quoted value ran a command in the shell');
  }

  describe('shellQuote', () => {
    it('has real shells to act as the oracle', () => {
      assert.ok(POSIX_SHELLS.includes('/bin/sh'));
      assert.ok(POSIX_SHELLS.length >= 2, `only ${POSIX_SHELLS.join(', ')} found`);
    });

    for (const shell of POSIX_SHELLS) {
      it(`round-trips every hostile string byte for byte through ${shell}`, () => {
        for (const value of HOSTILE) {
          const result = runShell(shell, `printf %s ${shellQuote(value)}`);
          const label = JSON.stringify(value.slice(0, 60));
          assert.equal(result.status, 0, `${shell} failed on ${label}: ${result.stderr.toString()}`);
          assert.ok(result.stdout.equals(Buffer.from(value, 'utf8')), `${shell} changed ${label} into ${JSON.stringify(result.stdout.toString().slice(0, 60))}`);
          assertNoCanary();
        }
      });

      it(`passes each hostile string as exactly one argument in ${shell}`, () => {
        for (const value of HOSTILE.filter((v) => v.length < 1000)) {
          // Word splitting or globbing would change the argument count.
          const result = runShell(shell, `set -- ${shellQuote(value)}; printf %s "$#"`);
          assert.equal(result.stdout.toString(), '1', `argument count for ${JSON.stringify(value)}`);
          assertNoCanary();
        }
      });

      it(`sends invalid UTF-16 through ${shell} exactly as Node encodes it (U+FFFD)`, () => {
        for (const value of INVALID_UTF16) {
          const result = runShell(shell, `printf %s ${shellQuote(value)}`);
          assert.ok(result.stdout.equals(Buffer.from(value, 'utf8')), JSON.stringify(value));
        }
      });

      it(`round-trips random fuzz strings through ${shell} in one shellJoin command line`, () => {
        const alphabet = ` \t\n\r'"\\$\`;&|<>(){}[]*?~!#=%^,.-_/:@+abcXYZ019é中🙂\x1b\x07\x7f`;
        const chars = Array.from(alphabet);
        let seed = 0x1234567;
        const next = (): number => {
          seed = (seed * 1103515245 + 12345) & 0x7fffffff;
          return seed;
        };
        const words: string[] = [];
        for (let i = 0; i < 300; i++) {
          const length = next() % 24;
          let word = '';
          for (let j = 0; j < length; j++) word += chars[next() % chars.length];
          words.push(word);
        }
        // printf repeats its format for every argument: each word is followed by one NUL.
        const result = runShell(shell, shellJoin(['printf', '%s\\000', ...words]));
        assert.equal(result.status, 0, result.stderr.toString());
        const got = result.stdout.toString('utf8').split('\0');
        assert.equal(got.pop(), '');
        assert.deepEqual(got, words);
        assertNoCanary();
      });
    }

    it('leaves plain words alone and quotes everything else', () => {
      for (const plain of ['abc', 'ABC_123', 'user@host', 'a=b', '/usr/local/bin', '-rf', '1.2.3', 'a,b', 'x+y', '50%', 'host:22']) {
        assert.equal(shellQuote(plain), plain);
      }
      assert.equal(shellQuote(''), `''`);
      assert.equal(shellQuote('a b'), `'a b'`);
      assert.equal(shellQuote(`it's`), `'it'\\''s'`);
      assert.equal(shellQuote('~'), `'~'`);
      assert.equal(shellQuote('*'), `'*'`);
      assert.equal(shellQuote('$x'), `'$x'`);
      assert.equal(shellQuote('é'), `'é'`);
    });

    it('produces output that is one line of safe characters or a single-quoted string', () => {
      for (const value of HOSTILE) {
        const quoted = shellQuote(value);
        const plain = /^[A-Za-z0-9_@%+=:,./-]+$/.test(quoted);
        const singleQuoted = quoted.startsWith(`'`) && quoted.endsWith(`'`);
        assert.ok(plain || singleQuoted, JSON.stringify(quoted.slice(0, 40)));
      }
    });

    it('refuses NUL anywhere in the value', () => {
      for (const value of ['\0', 'a\0', '\0b', 'a\0b', `'\0'`, 'x'.repeat(1000) + '\0']) {
        assert.throws(() => shellQuote(value), /NUL/);
      }
      assert.throws(() => shellJoin(['ok', 'bad\0word']), /NUL/);
    });
  });

  describe('shellJoin', () => {
    it('quotes each word and joins with single spaces', () => {
      assert.equal(shellJoin([]), '');
      assert.equal(shellJoin(['echo', 'a b', '', `'`]), `echo 'a b' '' ''\\'''`);
    });

    it('keeps each word a separate argument in a real shell', () => {
      const words = ['a b', '', '*', '$(touch CANARY)', '\n', `'"`, '-n'];
      const result = runShell('/bin/sh', `set -- ${shellJoin(words)}; printf '%s|' "$#" "$@"`);
      assert.equal(result.stdout.toString(), `${words.length}|${words.join('|')}|`);
      assertNoCanary();
    });
  });

  describe('wrapScript', () => {
    const script = [
      `greeting='it'"'"'s "quoted" $HOME \`not run\`'`,
      'printf "%s\\n" "$greeting"',
      `other="double 'single' \\$notexpanded"`,
      'printf "%s\\n" "$other"',
      'printf "start\\n"',
      'cat',
      'printf "end\\n"',
      'case "x" in',
      '  x) printf "case ok\\n" ;;',
      'esac',
      'printf "%s\\n" "é中🙂"',
    ].join('\n');
    const stdin = 'line from stdin\nsecond line with \'quotes\' and $dollar\n';
    const expected = [
      `it's "quoted" $HOME \`not run\``,
      `double 'single' $notexpanded`,
      'start',
      'line from stdin',
      `second line with 'quotes' and $dollar`,
      'end',
      'case ok',
      'é中🙂',
      '',
    ].join('\n');

    it('is one simple command: sh -c with a single-quoted base64 argument', () => {
      const wrapped = wrapScript(script);
      assert.match(wrapped, /^sh -c 'eval "\$\(echo [A-Za-z0-9+/=]+ \| base64 -d\)"'$/);
      assert.ok(!wrapped.includes('\n'));
    });

    for (const shell of POSIX_SHELLS) {
      it(`runs a multi-line quoted script from ${shell} as login shell, with the caller's stdin`, () => {
        // setsid: no controlling terminal, so nothing can fall back on /dev/tty.
        const [command, args] = SETSID ? [SETSID, [shell, '-c', wrapScript(script)]] : [shell, ['-c', wrapScript(script)]];
        const result = spawnSync(command, args, {
          cwd: dir, input: stdin, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent' }, timeout: 10_000,
        });
        assert.equal(result.stderr.toString(), '');
        assert.equal(result.status, 0);
        assert.equal(result.stdout.toString('utf8'), expected);
      });

      it(`passes the script's exit status back through ${shell}`, () => {
        const result = runShell(shell, wrapScript('echo before\nexit 7\necho after'));
        assert.equal(result.status, 7);
        assert.equal(result.stdout.toString(), 'before\n');
      });
    }

    for (const shell of OTHER_LOGIN_SHELLS) {
      it(`runs the same script from ${shell} as login shell`, () => {
        const result = spawnSync(shell, ['-c', wrapScript(script)], { cwd: dir, input: stdin, timeout: 10_000 });
        assert.equal(result.status, 0, result.stderr.toString());
        assert.equal(result.stdout.toString('utf8'), expected);
      });
    }

    it('runs scripts that end without a newline, with a here-document, or with blank trailing lines', () => {
      const variants = [
        'printf ok',
        'cat <<EOF\nhere $HOME\nEOF\n',
        "cat <<'EOF'\nliteral $HOME\nEOF",
        'echo ok\n\n\n\n',
      ];
      const outputs = ['ok', `here ${dir}\n`, 'literal $HOME\n', 'ok\n'];
      variants.forEach((variant, i) => {
        const result = runShell('/bin/sh', wrapScript(variant));
        assert.equal(result.stdout.toString(), outputs[i], JSON.stringify(variant));
      });
    });

    it('never runs hostile text in a script as anything but the script itself', () => {
      const hostile = `printf %s ${shellQuote(`'; touch ${CANARY}; "$(touch ${CANARY})"`)}`;
      for (const shell of POSIX_SHELLS) {
        const result = runShell(shell, wrapScript(hostile));
        assert.equal(result.stdout.toString(), `'; touch ${CANARY}; "$(touch ${CANARY})"`);
        assertNoCanary();
      }
    });

    it('grows by the base64 ratio, so the payload limit is meaningful', () => {
      const wrapped = wrapScript('x'.repeat(3000));
      assert.ok(wrapped.length > 4000 && wrapped.length < 4100, String(wrapped.length));
      assert.ok(MAX_REMOTE_COMMAND_BYTES <= 9 * 1024);
    });
  });
});
