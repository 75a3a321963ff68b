/**
 * The one place where values become remote shell words. Every value that goes into a command line
 * on a host passes through shellQuote(), whatever its source (the user, ssh config, another device).
 */

/** Quotes a value as a single POSIX sh word. NUL cannot be passed through a shell and is refused. */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new Error('a NUL byte cannot be passed to a remote shell');
  if (value !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Joins words into a command line, quoting each one. */
export function shellJoin(words: readonly string[]): string {
  return words.map(shellQuote).join(' ');
}

/**
 * Wraps a POSIX sh script so that any login shell (bash, zsh, fish, csh) runs it unchanged: the login
 * shell sees only `echo <base64> | base64 -d | sh` (DESIGN §7). The script's stdin is the pipe, so a
 * script that needs the terminal reattaches stdin to stderr, which is the same pty.
 */
export function wrapScript(script: string): string {
  const encoded = Buffer.from(script, 'utf8').toString('base64');
  return `echo ${encoded} | base64 -d | sh`;
}
