import { shellQuote } from '../common/quoting';
import { parseHostTarget } from '../ssh/sshConfig';

/**
 * `tether.sync.serverUrl` may name an SSH host instead of a sync server:
 *   ssh://<ssh config alias or user@host[:port]>[/path]
 * The path is where the account folders live on that host: `/~/dir` (or no path: `~/.tether/sync`)
 * is under the login's home, `/dir/sub` is absolute. Path segments are plain names only, so the
 * folder can never be read as shell syntax or climb out with `..`; it is still quoted wherever it
 * reaches a command line. Pure: no vscode, no I/O.
 */

export const DEFAULT_SSH_SYNC_DIR = '.tether/sync';

export interface SshSyncLocation {
  /** What the pool and ssh config resolve: an alias, or `user@host[:port]` as typed. */
  readonly hostLabel: string;
  /** Folder of the account folders: relative to the login's home, or absolute. */
  readonly dir: { readonly home: true; readonly path: string } | { readonly home: false; readonly path: string };
  /** For messages and the log, e.g. `ssh://build-1/~/.tether/sync`. */
  readonly display: string;
}

export class SshSyncUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SshSyncUrlError';
  }
  static is(error: unknown): error is SshSyncUrlError {
    return error instanceof SshSyncUrlError;
  }
}

const SEGMENT = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,99}$/;
const MAX_PATH_CHARS = 512;

export function isSshSyncUrl(text: string): boolean {
  return /^ssh:\/\//i.test(text.trim());
}

/** Parses an `ssh://` sync URL; throws SshSyncUrlError with a message fit for the user. */
export function parseSshSyncUrl(input: string): SshSyncLocation {
  const text = typeof input === 'string' ? input.trim() : '';
  if (!isSshSyncUrl(text)) throw new SshSyncUrlError('an SSH sync URL starts with ssh://');
  if (/[\s\p{Cc}]/u.test(text)) throw new SshSyncUrlError('the SSH sync URL contains spaces or control characters');
  const rest = text.slice('ssh://'.length);
  // The authority ends at the first "/" (an IPv6 address in brackets holds none).
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const pathText = slash < 0 ? '' : rest.slice(slash);
  if (authority === '') throw new SshSyncUrlError('the SSH sync URL names no host (ssh://host or ssh://user@host:port)');
  let target;
  try {
    target = parseHostTarget(authority);
  } catch (error) {
    throw new SshSyncUrlError(`the SSH sync URL's host is not valid: ${error instanceof Error ? error.message : String(error)}`);
  }
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const hostLabel = `${target.user !== undefined ? `${target.user}@` : ''}${host}${target.port !== undefined ? `:${target.port}` : ''}`;
  const dir = parsePath(pathText);
  return { hostLabel, dir, display: `ssh://${hostLabel}${dir.home ? `/~/${dir.path}` : dir.path}` };
}

function parsePath(pathText: string): SshSyncLocation['dir'] {
  if (pathText === '' || pathText === '/') return { home: true, path: DEFAULT_SSH_SYNC_DIR };
  if (pathText.length > MAX_PATH_CHARS) throw new SshSyncUrlError(`the SSH sync folder is longer than ${MAX_PATH_CHARS} characters`);
  const segments = pathText.slice(1).replace(/\/+$/, '').split('/');
  const home = segments[0] === '~';
  if (home) segments.shift();
  if (segments.length === 0) throw new SshSyncUrlError('the SSH sync folder cannot be the home folder itself; use e.g. ssh://host/~/.tether/sync');
  for (const segment of segments) {
    if (!SEGMENT.test(segment) || segment === '.' || segment === '..') {
      throw new SshSyncUrlError(`the SSH sync folder may hold only letters, digits, ".", "_" and "-" per segment (no "..", no shell characters): ${JSON.stringify(segment.slice(0, 40))}`);
    }
  }
  return home ? { home: true, path: segments.join('/') } : { home: false, path: `/${segments.join('/')}` };
}

/** The folder as one sh word (or `"$HOME"/word`): the only form in which it reaches a command line. */
export function shellDir(dir: SshSyncLocation['dir']): string {
  return dir.home ? `"$HOME"/${shellQuote(dir.path)}` : shellQuote(dir.path);
}
