/** What a host offers, and the scripts that drive a multiplexer there. No vscode import. */
import { parseClientDevices } from './sessionMetadata';

export type MultiplexerKind = 'tmux' | 'screen' | 'none';
export type MultiplexerPreference = 'auto' | MultiplexerKind;

export interface Version {
  major: number;
  minor: number;
  /** Whatever followed the numbers, e.g. "a" in tmux 3.3a or "-rc" in next-3.4. */
  suffix: string;
}

export interface HostCapabilities {
  tmux?: Version;
  screen?: Version;
  home: string;
  /** `uname -srm` (e.g. "Linux 6.1.0-18-amd64 x86_64"): only for problem reports; absent when unknown. */
  os?: string;
}

/** Parses `tmux -V` output: "tmux 3.3a", "tmux next-3.4", "tmux master", "tmux 2.1". */
export function parseTmuxVersion(output: string): Version | undefined {
  const match = /^tmux\s+(?:next-)?(\d+)\.(\d+)(\S*)/m.exec(output.trim());
  if (match) return { major: Number(match[1]), minor: Number(match[2]), suffix: match[3] };
  // Builds from git report "tmux master" (or openbsd-x.y); they are newer than any release.
  if (/^tmux\s+(master|openbsd)/m.test(output.trim())) return { major: 99, minor: 0, suffix: 'master' };
  return undefined;
}

/** Parses `screen -v` output: "Screen version 4.09.00 (GNU) 30-Jan-22". */
export function parseScreenVersion(output: string): Version | undefined {
  const match = /Screen version (\d+)\.(\d+)(\S*)/i.exec(output);
  return match ? { major: Number(match[1]), minor: Number(match[2]), suffix: match[3] } : undefined;
}

export function versionAtLeast(version: Version, major: number, minor: number): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}

/** "3.3a": for reports, and as the tab snapshot keeps a tmux version (parseTmuxVersion(`tmux ${it}`) reads it back). */
export function formatVersion(version: Version): string {
  return `${version.major}.${version.minor}${version.suffix}`;
}

/** The oldest tmux we drive: exact `=name` targets arrived in 2.1 (-L, -c and -x/-y are older). */
export const MIN_TMUX: readonly [number, number] = [2, 1];

/** Picks the multiplexer for a new session from the setting and what the host has. */
export function chooseMultiplexer(
  preference: MultiplexerPreference,
  capabilities: HostCapabilities,
): { kind: MultiplexerKind; reason?: string } {
  const tmuxUsable = capabilities.tmux && versionAtLeast(capabilities.tmux, MIN_TMUX[0], MIN_TMUX[1]);
  switch (preference) {
    case 'none':
      return { kind: 'none', reason: 'tether.multiplexer is set to none' };
    case 'tmux':
      if (tmuxUsable) return { kind: 'tmux' };
      return { kind: 'none', reason: capabilities.tmux ? `tmux ${formatVersion(capabilities.tmux)} is too old` : 'tmux is not installed on the host' };
    case 'screen':
      if (capabilities.screen) return { kind: 'screen' };
      return { kind: 'none', reason: 'GNU screen is not installed on the host' };
    case 'auto':
      if (tmuxUsable) return { kind: 'tmux' };
      if (capabilities.screen) return { kind: 'screen' };
      return {
        kind: 'none',
        reason: capabilities.tmux
          ? `tmux ${formatVersion(capabilities.tmux)} is too old (2.1 or newer is needed) and GNU screen is not installed on the host`
          : 'neither tmux nor GNU screen is installed on the host',
      };
  }
}

/** One round trip that reports what the host has. Output lines are `key=value`. */
export function detectScript(): string {
  return [
    'echo "home=$HOME"',
    // Rides the same round trip; only "Report a Problem" reads it.
    'echo "os=$(uname -srm 2>/dev/null)"',
    'if command -v tmux >/dev/null 2>&1; then echo "tmux=$(tmux -V 2>/dev/null | head -n 1)"; fi',
    'if command -v screen >/dev/null 2>&1; then echo "screen=$(screen -v 2>/dev/null | head -n 1)"; fi',
  ].join('\n');
}

export function parseDetectOutput(output: string): HostCapabilities {
  const fields = new Map<string, string>();
  for (const line of output.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return {
    home: fields.get('home') ?? '',
    tmux: fields.has('tmux') ? parseTmuxVersion(fields.get('tmux')!) : undefined,
    screen: fields.has('screen') ? parseScreenVersion(fields.get('screen')!) : undefined,
    ...(fields.get('os') ? { os: fields.get('os') } : {}),
  };
}

/** What a status probe found: the session lives, its shell exited with a status, or it is gone.
 * `unknown` (cut-off or foreign output) is never read as gone: only the host saying so ends a tab. */
export type SessionStatus = { state: 'alive' } | { state: 'exited'; exitCode: number } | { state: 'gone' } | { state: 'unknown' };

export function parseStatusOutput(output: string): SessionStatus {
  const line = output.trim().split('\n').pop()?.trim() ?? '';
  if (line === 'alive') return { state: 'alive' };
  if (line === 'gone') return { state: 'gone' };
  const exited = /^exited (\d{1,3})$/.exec(line);
  if (exited) return { state: 'exited', exitCode: Math.min(255, Number(exited[1])) };
  return { state: 'unknown' };
}

export type KillOutcome =
  | { killed: true }
  | {
      killed: false;
      reason: 'in-use' | 'unconfirmed';
      /** How many clients the host counted (ours included while it was attached). */
      clients?: number;
      /** In-use only: the devices of the *other* attached clients, read on the host by the kill
       * itself (each Tether client is marked with its device at attach). A client that is not
       * ours (a hand-run `tmux attach`) is counted in `clients` but not named. */
      attachedDevices?: string[];
    };

/** A kill's client limit that means "kill anyway" (the user confirmed it); the sentinel still decides. */
export const FORCE_KILL_CLIENTS = 1000;

/** A kill is believed only when the host echoed our one-time sentinel (docs/architecture.md, Kill with a sentinel). `ownDevice`,
 * when our own client was still attached, takes one client of that device out of the names. */
export function parseKillOutput(output: string, sentinel: string, ownDevice?: string): KillOutcome {
  const lines = output.split('\n').map((line) => line.trim());
  if (lines.includes(sentinel)) return { killed: true };
  const inUse = lines.map((line) => /^in-use (\d+)$/.exec(line)).find(Boolean);
  if (inUse) {
    const perClient = lines.flatMap((line) => parseClientDevices([line]).devices);
    const own = ownDevice === undefined ? -1 : perClient.indexOf(ownDevice);
    if (own >= 0) perClient.splice(own, 1);
    const outcome: KillOutcome = { killed: false, reason: 'in-use', clients: Number(inUse[1]) };
    if (perClient.length > 0) outcome.attachedDevices = [...new Set(perClient)];
    return outcome;
  }
  return { killed: false, reason: 'unconfirmed' };
}

export interface CreateOptions {
  id: string;
  /** Directory to start in; `~` and `~/…` are expanded on the host. Falls back to $HOME if missing. */
  cwd?: string;
  cols: number;
  rows: number;
  historyLimit: number;
  /** Stored on the host as session metadata (sessionMetadata.ts). */
  device?: string;
  title?: string;
}

/** The per-multiplexer script builders. Every value is quoted by shellQuote before it lands here. */
export interface MultiplexerScripts {
  readonly kind: 'tmux' | 'screen';
  /** Creates the session detached, prints `created`. */
  create(options: CreateOptions): string;
  /** Runs in the tab's pty: becomes the attached client, marked with `device`. Never creates. */
  attach(id: string, device?: string): string;
  /** Records a deliberate detach by `device` (and when) on the host; prints `marked`. */
  detachMark(id: string, device: string): string;
  /** Stores (or, undefined, removes) the session's title on the host; prints `titled`. */
  setTitle(id: string, title: string | undefined): string;
  /** Prints `alive`, `exited <code>` or `gone`. */
  status(id: string): string;
  /** Kills only if at most `maxClients` clients are attached; echoes `sentinel` once the session is gone. */
  /** `hostLock` (tmux): hold the host's tmux lock around the kill (tmuxCommands.ts hostLockLines). */
  kill(id: string, maxClients: number, sentinel: string, hostLock?: boolean): string;
  /** Prints the last `lines` lines of scrollback and screen, with colours. */
  capture(id: string, lines: number): string;
  /** Prints `<id> <cwd>` for each listed session that exists. */
  currentDirectories(ids: readonly string[]): string;
  /** Prints the IDs of every Tether session on the host, one per line. */
  listSessions(): string;
}

/** The shell the session runs: the user's login shell, with our multiplexer's variables removed
 * (docs/architecture.md, Pitfalls we design for) and its exit status recorded, so that "the user typed exit" is told apart from
 * "the session was killed". */
export function innerShellCommand(): string {
  // 129 is a shell ended by SIGHUP: the session was killed around it, so it is not an exit.
  // A session created with agent forwarding has its stable agent link already (agentForwarding.ts).
  return (
    'unset TMUX TMUX_PANE STY WINDOW; a="$HOME/.tether/agent/$1.sock"; [ -L "$a" ] && export SSH_AUTH_SOCK="$a"; ' +
    '"${SHELL:-/bin/sh}" -l; s=$?; rm -f "$a"; [ "$s" -eq 129 ] && exit 129; ' +
    'mkdir -p "$HOME/.tether/exit" && echo "$s" > "$HOME/.tether/exit/$1"'
  );
}

/** Shell lines shared by the scripts: resolve the exit-status file of a session. */
export function exitFileLines(id: string): string[] {
  return [`exitfile="$HOME/.tether/exit/${id}"`];
}

/** Expands a leading ~ on the host and falls back to $HOME when the directory is missing. */
export function cwdLines(quotedCwd: string | undefined): string[] {
  if (quotedCwd === undefined) return ['dir="$HOME"'];
  return [
    `dir=${quotedCwd}`,
    'case $dir in "~") dir="$HOME" ;; "~/"*) dir="$HOME/${dir#??}" ;; esac',
    '[ -d "$dir" ] || dir="$HOME"',
  ];
}
