import { shellQuote } from '../common/quoting';
import { assertSessionId, sessionName } from '../common/sessionId';
import { META_LIMITS, encodeMetaValue } from './sessionMetadata';
import {
  CreateOptions, MultiplexerScripts, Version, cwdLines, exitFileLines, innerShellCommand, versionAtLeast,
} from './multiplexer';

/** Our own tmux server, so the user's sessions and ours never mix (docs/architecture.md, Sessions). */
export const TMUX_SOCKET = 'tether';

/** Targets are always exact (`=name`): a bare name matches by prefix. Options take a pane target. */
function sessionTarget(id: string): string {
  return shellQuote(`=${sessionName(id)}`);
}
function paneTarget(id: string): string {
  return shellQuote(`=${sessionName(id)}:`);
}

const TMUX_FN = `t() { tmux -L ${TMUX_SOCKET} "$@"; }`;

/**
 * A lock on the host around tmux work that fires control notifications (a create, a kill, a control
 * client starting), for tmux 3.2 to 3.6: there a notification that reaches a control client still
 * identifying crashes the server (docs/reliability.md). Taken by the scripts themselves, so it
 * holds across devices and costs no round trip. A directory holding its owner's pid; `unlock`
 * removes only our own; a holder that has not let go after 3 s is presumed gone and the lock is
 * broken, and a lock that still cannot be made 3 s later (no writable home) is done without. The
 * EXIT trap lets go on every way out but `exec`, after which releaseWhenAttachedLines does.
 */
export function hostLockLines(): string[] {
  return [
    'lock="$HOME/.tether/tmux-notify.lock"',
    `unlock() { [ "$(cat "$lock/pid" 2>/dev/null)" = "$$" ] && rm -rf "$lock"; }`,
    'mkdir -p "$HOME/.tether" 2>/dev/null',
    // 3 s: break a stale lock; 6 s: a lock that cannot be made (no writable home) is done without.
    'n=0',
    'until mkdir "$lock" 2>/dev/null; do',
    '  n=$((n + 1)); [ "$n" -eq 150 ] && rm -rf "$lock"; [ "$n" -ge 300 ] && break',
    '  sleep 0.02',
    'done',
    '[ "$n" -lt 300 ] && echo $$ > "$lock/pid"',
    "trap 'unlock' EXIT",
    "trap 'unlock; exit 129' HUP",
    "trap 'unlock; exit 143' TERM",
  ];
}

/**
 * Before `exec tmux … attach` with the lock held: a background watcher lets go once tmux lists our
 * client (the shell's pid, which the client keeps through exec) attached to the session, that is,
 * identified; after 3 s at the latest.
 */
export function releaseWhenAttachedLines(id: string): string[] {
  const client = shellQuote(sessionName(assertSessionId(id)));
  return [
    TMUX_FN,
    `( i=0; while [ "$i" -lt 300 ]; do t list-clients -F '#{client_pid} #{session_name}' 2>/dev/null | grep -qx "$$ "${client} && break; i=$((i + 1)); sleep 0.01; done; unlock ) </dev/null >/dev/null 2>&1 &`,
  ];
}

export class TmuxScripts implements MultiplexerScripts {
  readonly kind = 'tmux' as const;

  constructor(readonly version: Version) {}

  create(options: CreateOptions): string {
    const id = assertSessionId(options.id);
    const name = sessionName(id);
    const cols = clampInt(options.cols, 10, 1000);
    const rows = clampInt(options.rows, 5, 1000);
    const history = clampInt(options.historyLimit, 100, 10_000_000);
    // tmux 3.0+ runs several arguments directly; a single string would go through the user's
    // shell, which may not exec it, and then a kill would not reach our wrapper (see exit files).
    const inner = versionAtLeast(this.version, 3, 0)
      ? `sh -c ${shellQuote(innerShellCommand())} tether ${id}`
      : shellQuote(`exec sh -c ${shellQuote(innerShellCommand())} tether ${id}`);
    const steps = [
      'start-server',
      // A server exits when its last session closes (exit-empty), and while it is exiting it still
      // accepts a new-session, then exits with it: a tab created the moment another closed lost its
      // session right after "created" (issue 13). Our server stays up instead; reboot still ends it.
      ...(versionAtLeast(this.version, 2, 7) ? ['set-option -s exit-empty off'] : []),
      // history-limit only affects panes created after it is set, so it goes before new-session.
      `set-option -g history-limit ${history}`,
      // A long escape-time makes Esc in vim feel stuck; 10 ms is what tmux itself now recommends.
      'set-option -s escape-time 10',
      // No -c: tmux expands formats in it (a directory named `#(touch X)` would run touch). The
      // script cd's into the directory instead, and tmux starts the pane in the client's cwd.
      `new-session -d -s ${shellQuote(name)} -x ${cols} -y ${rows} ${inner}`,
    ];
    const options_ = [`set-option -t ${paneTarget(id)} status off`];
    if (versionAtLeast(this.version, 2, 1)) options_.push(`set-option -t ${paneTarget(id)} prefix None`);
    options_.push(
      versionAtLeast(this.version, 3, 1)
        ? `set-window-option -t ${paneTarget(id)} window-size latest`
        : `set-window-option -t ${paneTarget(id)} aggressive-resize on`,
    );
    return [
      TMUX_FN,
      ...cwdLines(options.cwd === undefined ? undefined : shellQuote(options.cwd)),
      ...exitFileLines(id),
      'rm -f "$exitfile"',
      'cd "$dir" 2>/dev/null || cd',
      // Tabs created at once on a host whose tmux server is not running race to start it, and the
      // losers fail: try again until the session exists (never creating it twice).
      'i=0',
      `until t has-session -t ${sessionTarget(id)} 2>/dev/null; do`,
      '  [ "$i" -ge 6 ] && exit 1',
      `  t ${steps.join(' \\; ')} 2>&1 || sleep 0.$((i + 1))`,
      '  i=$((i + 1))',
      'done',
      `t ${options_.join(' \\; ')} || exit 1`,
      metadataLine(id, { device: options.device, title: options.title, createdAt: true }),
      // For VS Code's xterm-256color terminal, once per server: truecolor, and no alternate screen,
      // so replayed history and lines tmux scrolls off stay in VS Code's own scrollback.
      `t show-options -s terminal-overrides 2>/dev/null | grep -q 'smcup@' || t set-option -as terminal-overrides ${shellQuote(versionAtLeast(this.version, 2, 2) ? ',xterm-256color:Tc:smcup@:rmcup@' : ',xterm-256color:smcup@:rmcup@')}`,
      'echo created',
    ].join('\n');
  }

  attach(id: string, device?: string): string {
    return [
      'unset TMUX TMUX_PANE',
      ...clientMarkLines(id, device),
      `exec tmux -L ${TMUX_SOCKET} attach-session -t ${sessionTarget(id)}`,
    ].join('\n');
  }

  detachMark(id: string, device: string): string {
    return [TMUX_FN, metadataLine(assertSessionId(id), { detachedBy: device }), 'echo marked'].join('\n');
  }

  setTitle(id: string, title: string | undefined): string {
    const value = encodeMetaValue(title, META_LIMITS.title);
    const command = value === undefined
      ? `set-option -qu -t ${paneTarget(id)} @tether_title`
      : `set-option -t ${paneTarget(id)} @tether_title ${shellQuote(value)}`;
    return [TMUX_FN, `t ${command} 2>/dev/null && echo titled`].join('\n');
  }

  status(id: string): string {
    return [
      TMUX_FN,
      ...exitFileLines(assertSessionId(id)),
      `if command -v tmux >/dev/null 2>&1 && t has-session -t ${sessionTarget(id)} 2>/dev/null; then echo alive`,
      'elif [ -f "$exitfile" ]; then echo "exited $(head -c 4 "$exitfile")"',
      'else echo gone; fi',
    ].join('\n');
  }

  /** `hostLock`: take hostLockLines around the kill (control mode on tmux 3.2 to 3.6). */
  kill(id: string, maxClients: number, sentinel: string, hostLock = false): string {
    const max = clampInt(maxClients, 0, 1000);
    const killOnlyIfUnused = versionAtLeast(this.version, 3, 1)
      // Count and kill inside the tmux server in one command: nothing can attach in between.
      ? `t if-shell -F -t ${paneTarget(id)} ${shellQuote(attachedAtMost(max))} ${shellQuote(`kill-session -t =${sessionName(id)}`)} 2>/dev/null`
      // Older tmux has no comparison formats: count, then kill (a narrow race, documented).
      : `n=$(t list-clients -t ${sessionTarget(id)} 2>/dev/null | wc -l); [ "$n" -le ${max} ] && t kill-session -t ${sessionTarget(id)} 2>/dev/null`;
    return [
      TMUX_FN,
      'command -v tmux >/dev/null 2>&1 || { echo no-tmux; exit 0; }',
      ...(hostLock ? hostLockLines() : []),
      killOnlyIfUnused,
      `if t has-session -t ${sessionTarget(id)} 2>/dev/null; then echo "in-use $(t list-clients -t ${sessionTarget(id)} 2>/dev/null | wc -l | tr -d ' ')"`,
      // Name the devices of the clients that keep it alive (the marks clientMarkLines set).
      `  for p in $(t list-clients -t ${sessionTarget(id)} -F '#{client_pid}' 2>/dev/null); do echo "client =$(t show-options -gqv "@tether_client_$p" 2>/dev/null)"; done`,
      `else echo ${shellQuote(sentinel)}; fi`,
    ].join('\n');
  }

  capture(id: string, lines: number): string {
    const count = clampInt(lines, 0, 1_000_000);
    return [TMUX_FN, `t capture-pane -p -e -J -t ${paneTarget(id)} -S -${count} 2>/dev/null`].join('\n');
  }

  currentDirectories(ids: readonly string[]): string {
    ids.forEach(assertSessionId);
    return [
      TMUX_FN,
      `t list-panes -a -F '#{session_name} #{pane_current_path}' 2>/dev/null`,
      // Titles ride along, so a rename on another device reaches open tabs here (parseTitles).
      `t list-sessions -F 'title #{session_name} =#{@tether_title}' 2>/dev/null`,
    ].join('\n');
  }

  /** `<name> <attached> <created> =<device> =<title> =<created_at> =<detached_by> =<detached_at>`
   * per session, then `client <name> =<device>` per attached client. Stored values are encoded
   * (sessionMetadata.ts) and hold no space, so the fields split on spaces. */
  listSessions(): string {
    const meta = META_KEYS.map((key) => `=#{@tether_${key}}`).join(' ');
    return [
      TMUX_FN,
      `t list-sessions -F '#{session_name} #{session_attached} #{session_created} ${meta}' 2>/dev/null`,
      `t list-clients -F '#{client_pid} #{session_name}' 2>/dev/null | while read -r p s; do echo "client $s =$(t show-options -gqv "@tether_client_$p" 2>/dev/null)"; done`,
    ].join('\n');
  }
}

/** The metadata keys, in the order listSessions prints them (`@tether_<key>`). */
export const META_KEYS = ['device', 'title', 'created_at', 'detached_by', 'detached_at'] as const;

/**
 * Lines for the attach scripts (attach and control mode): mark the client that is about to exec
 * with its device, keyed by its pid (`exec` keeps `$$`, so tmux reports it as `#{client_pid}`),
 * record the device as the session's last one, and clear a previous detach. Marks of processes
 * that are gone are dropped; a mark is only ever read for a pid that is a live client.
 */
export function clientMarkLines(id: string, device: string | undefined): string[] {
  const value = encodeMetaValue(device, META_LIMITS.device);
  if (value === undefined) return [];
  const target = paneTarget(id);
  return [
    TMUX_FN,
    `t set-option -g "@tether_client_$$" ${shellQuote(value)} \\; set-option -t ${target} @tether_device ${shellQuote(value)} \\; set-option -qu -t ${target} @tether_detached_by \\; set-option -qu -t ${target} @tether_detached_at >/dev/null 2>&1`,
    `for p in $(t show-options -g 2>/dev/null | sed -n 's/^@tether_client_\\([0-9][0-9]*\\) .*/\\1/p'); do kill -0 "$p" 2>/dev/null || t set-option -gqu "@tether_client_$p" >/dev/null 2>&1; done`,
  ];
}

/** One tmux line that sets metadata options (values encoded and quoted); empty values are skipped. */
function metadataLine(id: string, values: { device?: string; title?: string; createdAt?: boolean; detachedBy?: string }): string {
  const target = paneTarget(id);
  const sets: string[] = [];
  const add = (key: string, value: string | undefined): void => {
    if (value !== undefined) sets.push(`set-option -t ${target} @tether_${key} ${shellQuote(value)}`);
  };
  add('device', encodeMetaValue(values.device, META_LIMITS.device));
  add('title', encodeMetaValue(values.title, META_LIMITS.title));
  if (values.createdAt) sets.push(`set-option -t ${target} @tether_created_at "$(date +%s)"`);
  const detachedBy = encodeMetaValue(values.detachedBy, META_LIMITS.device);
  if (detachedBy !== undefined) {
    add('detached_by', detachedBy);
    sets.push(`set-option -t ${target} @tether_detached_at "$(date +%s)"`);
  }
  return sets.length ? `t ${sets.join(' \\; ')} >/dev/null 2>&1` : ':';
}

/** A tmux format that is true when at most `max` clients are attached. tmux compares `<=` as text
 * ("10" <= "2"), so the count is matched exactly against each allowed value. */
function attachedAtMost(max: number): string {
  const allowed = Array.from({ length: Math.min(max, 8) + 1 }, (_, n) => `#{==:#{session_attached},${n}}`);
  return allowed.reduce((either, next) => `#{||:${either},${next}}`);
}

/** Parses `<session name> <rest>` lines, keeping only well-formed Tether sessions. */
export function parseSessionLines(output: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const line of output.split('\n')) {
    const match = /^tether_([a-z2-7]{26}) (.*)$/.exec(line);
    if (match && !result.has(match[1])) result.set(match[1], match[2]);
  }
  return result;
}

export function clampInt(value: number, min: number, max: number): number {
  if (!Number.isFinite(value)) return min;
  return Math.min(max, Math.max(min, Math.trunc(value)));
}
