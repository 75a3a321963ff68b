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
 * Wraps a POSIX sh script so that any login shell (bash, zsh, fish, csh) runs it unchanged: the
 * login shell sees one simple command with a single-quoted argument (docs/architecture.md, Remote commands). The script is
 * decoded inside sh, so stdin stays the channel's stdin (the pty, when there is one) and nothing
 * reopens /dev/tty. base64 text holds no character that is special inside the quotes.
 */
export function wrapScript(script: string): string {
  const encoded = Buffer.from(script, 'utf8').toString('base64');
  return `sh -c 'eval "$(echo ${encoded} | base64 -d)"'`;
}

/** Remote command payloads stay well under the ~9 KB that some small servers accept (docs/architecture.md, Remote commands). */
export const MAX_REMOTE_COMMAND_BYTES = 8192;
