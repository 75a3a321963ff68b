import { shellQuote } from '../common/quoting';
import { assertSessionId, sessionName } from '../common/sessionId';
import { CreateOptions, FORCE_KILL_CLIENTS, MultiplexerScripts, cwdLines, exitFileLines, innerShellCommand } from './multiplexer';
import { META_LIMITS, encodeMetaValue } from './sessionMetadata';
import { META_KEYS, clampInt } from './tmuxCommands';

/** A dedicated socket directory keeps our sessions out of the user's `screen -ls` (docs/architecture.md, Sessions). */
const SCREENDIR_LINES = [
  'SCREENDIR="$HOME/.tether/screen"; export SCREENDIR',
  'mkdir -p "$SCREENDIR" && chmod 700 "$SCREENDIR"',
];

/** screen has no user options: a session's metadata is a small `key=value` file beside SCREENDIR
 * (never inside it, where screen expects only sockets). Values are encoded as for tmux. */
const META_DIR_LINES = ['metadir="$HOME/.tether/screen-meta"', 'mkdir -p "$metadir" && chmod 700 "$metadir"'];

type MetaKey = (typeof META_KEYS)[number];

/** Rewrites the session's metadata file: `set` keys replaced (`now` is the host's clock), `unset`
 * keys removed. Only when the session exists, so a stale attach leaves no file behind. */
function metaUpdateLines(id: string, given: Partial<Record<MetaKey, string | 'now' | undefined>>, unset: MetaKey[] = []): string[] {
  const set = Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined)) as Record<string, string>;
  const keys = [...Object.keys(set), ...unset] as MetaKey[];
  if (keys.length === 0) return [];
  const values = Object.entries(set).map(([key, value]) => (value === 'now' ? `"${key}=$(date +%s)"` : shellQuote(`${key}=${value}`)));
  return [
    ...META_DIR_LINES,
    `f="$metadir/${sessionName(id)}"`,
    `if ls "$SCREENDIR"/*.${sessionName(id)} >/dev/null 2>&1; then`,
    `  { grep -v ${keys.map((key) => `-e '^${key}='`).join(' ')} "$f" 2>/dev/null; ${values.length ? `printf '%s\\n' ${values.join(' ')}` : ':'}; } > "$f.$$" && mv -f "$f.$$" "$f"`,
    'fi',
  ];
}

/** Prints the `screen -ls` line of our session, if it exists and is not dead. */
function findLine(id: string): string {
  const pattern = shellQuote(`[0-9]\\.${sessionName(id)}[[:space:]]`);
  return `line=$(screen -ls 2>/dev/null | grep ${pattern} | grep -v Dead | head -n 1)`;
}

function encodedFields(values: { device?: string; title?: string }): { device?: string; title?: string } {
  return { device: encodeMetaValue(values.device, META_LIMITS.device), title: encodeMetaValue(values.title, META_LIMITS.title) };
}

export class ScreenScripts implements MultiplexerScripts {
  readonly kind = 'screen' as const;

  create(options: CreateOptions): string {
    const id = assertSessionId(options.id);
    const history = clampInt(options.historyLimit, 100, 1_000_000);
    return [
      ...SCREENDIR_LINES,
      ...cwdLines(options.cwd === undefined ? undefined : shellQuote(options.cwd)),
      ...exitFileLines(id),
      'rm -f "$exitfile"',
      'cd "$dir" || cd',
      `screen -U -dmS ${shellQuote(sessionName(id))} -h ${history} sh -c ${shellQuote(innerShellCommand())} tether ${id} || exit 1`,
      // Ctrl-A is readline's start-of-line; the user's keys must reach the shell.
      `screen -S ${shellQuote(sessionName(id))} -X escape '' >/dev/null 2>&1`,
      ...metaUpdateLines(id, { ...encodedFields({ device: options.device, title: options.title }), created_at: 'now' }),
      'echo created',
    ].join('\n');
  }

  attach(id: string, device?: string): string {
    const device_ = encodedFields({ device }).device;
    return [
      ...SCREENDIR_LINES,
      'unset STY WINDOW',
      ...(device_ === undefined ? [] : metaUpdateLines(assertSessionId(id), { device: device_ }, ['detached_by', 'detached_at'])),
      `exec screen -U -x ${shellQuote(sessionName(id))}`,
    ].join('\n');
  }

  detachMark(id: string, device: string): string {
    const by = encodedFields({ device }).device;
    return [...SCREENDIR_LINES, ...(by === undefined ? [] : metaUpdateLines(assertSessionId(id), { detached_by: by, detached_at: 'now' })), 'echo marked'].join('\n');
  }

  setTitle(id: string, title: string | undefined): string {
    const value = encodedFields({ title }).title;
    const lines = value === undefined ? metaUpdateLines(assertSessionId(id), {}, ['title']) : metaUpdateLines(assertSessionId(id), { title: value });
    return [...SCREENDIR_LINES, ...lines, `[ -f "$f" ] && echo titled`].join('\n');
  }

  status(id: string): string {
    return [
      ...SCREENDIR_LINES,
      ...exitFileLines(assertSessionId(id)),
      findLine(id),
      'if [ -n "$line" ]; then echo alive',
      'elif [ -f "$exitfile" ]; then echo "exited $(head -c 4 "$exitfile")"',
      'else echo gone; fi',
    ].join('\n');
  }

  /**
   * screen cannot count clients, so the caller detaches its own display first and passes 0;
   * FORCE_KILL_CLIENTS quits an attached session too (the user confirmed "Kill anyway").
   */
  kill(id: string, maxClients: number, sentinel: string): string {
    const name = shellQuote(sessionName(id));
    const force = maxClients >= FORCE_KILL_CLIENTS;
    return [
      ...SCREENDIR_LINES,
      'command -v screen >/dev/null 2>&1 || { echo no-screen; exit 0; }',
      findLine(id),
      'case $line in',
      '  "") ;;',
      '  *etached*) screen -S ' + name + ' -X quit >/dev/null 2>&1 ;;',
      // Our own display left first, so whoever is attached is another client: name the device
      // that attached last (screen cannot tell clients apart).
      force
        ? '  *) screen -S ' + name + ' -X quit >/dev/null 2>&1 ;;'
        : `  *) echo "in-use 1"; echo "client =$(sed -n 's/^device=//p' "$HOME/.tether/screen-meta/${sessionName(id)}" 2>/dev/null | head -n 1)"; exit 0 ;;`,
      'esac',
      // quit removes the session asynchronously (about a second after a display left): poll.
      'i=0; while [ $i -lt 50 ]; do',
      '  ' + findLine(id),
      `  if [ -z "$line" ]; then rm -f "$HOME/.tether/screen-meta/${sessionName(id)}"; echo ${shellQuote(sentinel)}; exit 0; fi`,
      '  i=$((i+1)); sleep 0.1',
      'done',
      'echo "in-use 1"',
    ].join('\n');
  }

  /** hardcopy -h writes asynchronously: wait until the file stops growing, print it, remove it. */
  capture(id: string, lines: number): string {
    const count = clampInt(lines, 0, 1_000_000);
    return [
      ...SCREENDIR_LINES,
      'f=$(mktemp "${TMPDIR:-/tmp}/tether-hc.XXXXXX") || exit 1',
      `screen -S ${shellQuote(sessionName(id))} -X hardcopy -h "$f" >/dev/null 2>&1 || { rm -f "$f"; exit 1; }`,
      'prev=-1; i=0',
      'while [ $i -lt 50 ]; do size=$(wc -c < "$f" 2>/dev/null || echo 0)',
      '  [ "$size" -gt 0 ] && [ "$size" = "$prev" ] && break',
      '  prev=$size; i=$((i+1)); sleep 0.05; done',
      // hardcopy pads the screen with blank rows: trim trailing blank lines, keep the tail.
      `sed -e :a -e '/^[[:space:]]*$/{$d;N;ba' -e '}' "$f" | tail -n ${count}`,
      'rm -f "$f"',
    ].join('\n');
  }

  currentDirectories(ids: readonly string[]): string {
    ids.forEach(assertSessionId);
    // screen has no query for a window's directory; read the shell's cwd from /proc where it exists.
    return [
      ...SCREENDIR_LINES,
      'for s in "$SCREENDIR"/*.tether_*; do [ -e "$s" ] || continue',
      '  pid=${s##*/}; pid=${pid%%.*}; name=${s##*.}',
      '  child=$(pgrep -P "$pid" 2>/dev/null | head -n 1); sh=$(pgrep -P "$child" 2>/dev/null | head -n 1)',
      '  [ -n "$sh" ] && cwd=$(readlink "/proc/$sh/cwd" 2>/dev/null) && echo "$name $cwd"',
      '  echo "title $name =$(sed -n \'s/^title=//p\' "$HOME/.tether/screen-meta/$name" 2>/dev/null | head -n 1)"',
      'done',
    ].join('\n');
  }

  /** `<name> <state>` per session, then `meta <name> <key>=<value>` per metadata line. */
  listSessions(): string {
    return [
      ...SCREENDIR_LINES,
      `for f in "$HOME/.tether/screen-meta"/tether_*; do [ -f "$f" ] && sed -n "s/^\\([a-z_]*=[A-Za-z0-9._~%]*\\)$/meta \${f##*/} \\1/p" "$f"; done`,
      `screen -ls 2>/dev/null | sed -n 's/^[[:space:]]*[0-9]*\\.\\(tether_[a-z2-7]*\\)[[:space:]].*(\\([A-Za-z, ]*\\)).*$/\\1 \\2/p'`,
    ].join('\n');
  }
}
