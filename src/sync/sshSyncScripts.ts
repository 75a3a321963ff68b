import { randomBytes } from 'node:crypto';
import { shellQuote } from '../common/quoting';
import { isValidSessionId } from '../common/sessionId';
import { MAX_ENVELOPE_BYTES } from './envelope';
import { type SshSyncLocation, shellDir } from './sshSyncUrl';

/**
 * The POSIX sh scripts that keep an account's blobs as files on an SSH host (docs/protocol.md,
 * "Sync through an SSH host"). Pure text builders, unit-tested; sshTransport.ts runs them.
 *
 * Layout of `<dir>/<account>/` (mode 700, account = hex sha256 of the sync token, as on the server):
 *   <slot>.blob      {"version":N,"updatedAt":"…","data":"<base64 envelope>"}, replaced by rename
 *   <slot>.v<N>      empty marker: the slot's version, readable from a glob without reading files
 *   <slot>.d<N>      a deleted slot's last version (the next write goes above it)
 *   <slot>.s<T>      presence: the slot's watcher renews it every few seconds (T = host epoch seconds)
 *   <slot>.z<B>      empty marker: the size of the slot's file in bytes (the quota sums a glob)
 *   .lock            noclobber lock file around every version change, holding its holder's token
 * Only the slot ID (checked, then quoted), numbers we chose, the quoted folder and our own base64
 * (checked, then single-quoted) reach these scripts; nothing read on the host is ever put on a
 * command line.
 */

export interface SshSyncLimits {
  readonly maxBlobBytes: number;
  readonly maxSlots: number;
  readonly maxAccountBytes: number;
}

/** The server's defaults (src/server/config.ts), so both transports hold the same. */
export const SSH_SYNC_LIMITS: SshSyncLimits = {
  /** Largest blob after base64 decoding (TETHER_MAX_BLOB_BYTES). */
  maxBlobBytes: 256 * 1024,
  /** Slots per account (TETHER_MAX_SLOTS). */
  maxSlots: 64,
  /** Sum of the account's decoded blobs (TETHER_MAX_ACCOUNT_BYTES). */
  maxAccountBytes: 4 * 1024 * 1024,
};

/** Entries a list reads at most: a flood of files beyond it leaves the list incomplete (nothing is removed). */
export const MAX_LIST_ENTRIES = 1024;
/** A blob file is read up to the largest envelope in base64 plus its small JSON wrapper. */
export const MAX_BLOB_FILE_BYTES = Math.ceil(MAX_ENVELOPE_BYTES / 3) * 4 + 256;
/**
 * A blob file up to this size (newline included) that holds one line of the characters putScript
 * writes is printed as it is (an `F` line) instead of through `head | base64` (a `B` line): the
 * `read` builtin costs no fork but reads a byte per system call in dash (about 2 µs a byte on the
 * benchmark VM), so past about 8 KiB two forks are cheaper again.
 */
export const MAX_INLINE_FILE_BYTES = 8 * 1024;
/** The characters of a blob file as putScript writes it: `{"version":N,"updatedAt":"…Z","data":"<base64>"}`. */
const INLINE_CHARS = 'A-Za-z0-9+/={}":,-';

const HEX64 = /^[0-9a-f]{64}$/;

function checkAccount(account: string): void {
  if (!HEX64.test(account)) throw new TypeError('account must be 64 hex characters');
}
function checkSlot(slotId: string): void {
  if (!isValidSessionId(slotId)) throw new TypeError('not a valid slot ID');
}
function checkInt(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`${what} must be a non-negative integer`);
}

/** Goes to the account folder (creating it 700); every script starts with it. */
function prelude(location: SshSyncLocation, account: string): string {
  checkAccount(account);
  return [
    'umask 077',
    `d=${shellDir(location.dir)}/${account}`,
    // Forks are what a script costs on a busy host: create (700) only when missing.
    '[ -d "$d" ] || { mkdir -p "$d" 2>/dev/null; chmod 700 "$d" 2>/dev/null; }',
    'cd "$d" || { echo "ERR cannot enter the sync folder"; exit 0; }',
    'sl() { sleep "$1" 2>/dev/null || sleep 1; }',
  ].join('\n');
}

/** The current version marker of slot "$s" into "$cur" (empty when none), ignoring malformed names. */
const READ_VERSION = [
  'cur=',
  'for f in "$s".v*; do [ -e "$f" ] || continue; v=${f#"$s".v}',
  '  case $v in ""|*[!0-9]*|????????????????*) continue;; esac; cur=$v; done',
].join('\n');

/**
 * A lock file created with noclobber (O_EXCL: atomic, and a builtin, so no fork) that names its
 * holder. A waiter that sees the same holder for 10 s takes the lock over (a writer that died
 * holding it); the holder's token makes sure a fresh lock is never broken for a stale one. An older
 * Tether's `mkdir` lock of the same name blocks us as ours blocks it.
 */
function lockFunction(holder: string): string {
  if (!/^[0-9a-f]{8,32}$/.test(holder)) throw new TypeError('lock holder must be hex');
  return [
    'lock() {',
    '  n=0; seen=; since=',
    '  set -C',
    // echo, not ':': a failed redirection of a special builtin would end the shell.
    `  until echo ${holder} 2>/dev/null > .lock; do`,
    '    o=; read -r o < .lock 2>/dev/null',
    '    if [ "$o" != "$seen" ] || [ -z "$since" ]; then seen=$o; since=$(date +%s); fi',
    '    n=$((n+1))',
    // The clock is read every 10 tries only: forks are slow on a busy host.
    '    if [ $((n % 10)) -eq 0 ] && [ $(($(date +%s) - since)) -ge 10 ]; then mv .lock ".lock.stale.$$" 2>/dev/null && rm -rf ".lock.stale.$$"; since=$(date +%s); fi',
    '    sl 0.05',
    '  done',
    '  set +C',
    "  trap 'rm -rf .lock' EXIT; trap 'exit 1' HUP INT TERM PIPE",
    '}',
  ].join('\n');
}

const newHolder = (): string => randomBytes(8).toString('hex');

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Writes slot `slotId` with `base64` (the envelope, in base64) if its version is still
 * `knownVersion` (undefined: it must not exist). Prints one of: OK <version> | CONFLICT
 * <version|none> | TOO_MANY_SLOTS | ACCOUNT_FULL | TOO_LARGE | ERR <why>.
 *
 * The base64 is a single-quoted word of the script (checked here, so it cannot end the quotes):
 * the shell's parser takes it in buffered reads, where `read` from a here-document would read a
 * byte per system call (and dash forks to fill a here-document over 4 KiB). The script goes on the
 * long-lived shell's stdin (remoteShell.ts), never on a command line, where it would show in `ps`.
 */
export function putScript(
  location: SshSyncLocation,
  account: string,
  slotId: string,
  knownVersion: number | undefined,
  base64: string,
  limits: SshSyncLimits = SSH_SYNC_LIMITS,
  now: Date = new Date(),
  holder: string = newHolder(),
): string {
  checkSlot(slotId);
  if (knownVersion !== undefined) checkInt(knownVersion, 'version');
  if (!BASE64.test(base64)) throw new TypeError('the blob must be base64');
  const maxB64 = Math.ceil(limits.maxBlobBytes / 3) * 4;
  // The account quota counts decoded bytes on the server; here the files hold base64 plus a wrapper.
  const maxAccountFileBytes = Math.ceil(limits.maxAccountBytes / 3) * 4 + limits.maxSlots * 80;
  const updatedAt = now.toISOString().replace(/\.[0-9]{3}Z$/, 'Z');
  // The file is this wrapper, the version's digits and the base64: its size bounds the base64 exactly.
  const prefix = `{"version":%s,"updatedAt":"${updatedAt}","data":"`;
  const wrapperBytes = Buffer.byteLength(prefix.replace('%s', '')) + '"}\n'.length;
  return [
    prelude(location, account),
    lockFunction(holder),
    `s=${shellQuote(slotId)}; want=${knownVersion === undefined ? "''" : String(knownVersion)}`,
    'lock',
    READ_VERSION,
    'if [ "$cur" != "$want" ]; then echo "CONFLICT ${cur:-none}"; exit 0; fi',
    'if [ -z "$cur" ]; then',
    '  n=0; for f in *.v*; do [ -e "$f" ] && n=$((n+1)); done',
    `  if [ "$n" -ge ${limits.maxSlots} ]; then echo TOO_MANY_SLOTS; exit 0; fi`,
    'fi',
    'prev=${cur:-0}',
    'for f in "$s".d*; do [ -e "$f" ] || continue; v=${f#"$s".d}',
    '  case $v in ""|*[!0-9]*|????????????????*) continue;; esac; [ "$v" -gt "$prev" ] && prev=$v; done',
    'next=$((prev+1))',
    't=".$s.tmp.$$"',
    // Builtins only, no forks: length, character check (again, on the host), and the sizes of the
    // other slots from their `.z<bytes>` markers.
    `b64='${base64}'`,
    'case $b64 in *[!A-Za-z0-9+/=]*) echo "ERR the blob is not base64"; exit 0;; esac',
    `if [ \${#b64} -gt ${maxB64} ]; then echo TOO_LARGE; exit 0; fi`,
    `size=$((${wrapperBytes} + \${#next} + \${#b64}))`,
    `used=0; for f in *.z*; do [ -e "$f" ] || continue; o=\${f%%.z*}; [ "$o" = "$s" ] && continue; z=\${f#"$o".z}`,
    `  case $z in ""|*[!0-9]*|????????????????*) continue;; esac; [ "$z" -le ${maxB64 + 128} ] && used=$((used + z)); done`,
    `if [ $((used + size)) -gt ${maxAccountFileBytes} ]; then echo ACCOUNT_FULL; exit 0; fi`,
    `printf '${prefix}%s"}\\n' "$next" "$b64" > "$t" || { rm -f "$t"; echo "ERR cannot write"; exit 0; }`,
    // fsync the new file where sync takes a file (coreutils 8.24+); elsewhere rename alone.
    'sync "$t" 2>/dev/null',
    'mv -f "$t" "$s.blob" || { rm -f "$t"; echo "ERR cannot rename"; exit 0; }',
    // The stale markers (old version, old size, deleted versions) and the lock go in one rm.
    'set --; for f in "$s".z*; do [ -e "$f" ] && [ "$f" != "$s.z$size" ] && set -- "$@" "$f"; done',
    '[ -n "$cur" ] && set -- "$@" "$s.v$cur"',
    ': > "$s.v$next"; : > "$s.z$size"',
    'rm -rf -- "$@" "$s".d* .lock; trap - EXIT',
    'echo "OK $next"',
  ].join('\n');
}

/** Deletes a slot (a missing one counts as done), leaving its last version as `<slot>.d<N>`. Prints OK. */
export function deleteScript(location: SshSyncLocation, account: string, slotId: string, holder: string = newHolder()): string {
  checkSlot(slotId);
  return [
    prelude(location, account),
    lockFunction(holder),
    `s=${shellQuote(slotId)}`,
    'lock',
    READ_VERSION,
    'rm -f "$s.blob" "$s".v* "$s".z* "$s".s*',
    '[ -n "$cur" ] && : > "$s.d$cur"',
    'echo OK',
  ].join('\n');
}

/** Removes a slot's presence file (its watcher stopped cleanly). */
export function leaveScript(location: SshSyncLocation, account: string, slotId: string): string {
  checkSlot(slotId);
  return [prelude(location, account), `rm -f ${shellQuote(slotId)}.s*`, 'echo OK'].join('\n');
}

/**
 * Prints per blob `F <slot> <version marker> <the file's line>` when the file is a small one-line
 * file of putScript's characters (PRINT_FILE), else `B <slot> <version marker> <base64 of the
 * file>` (the file's bytes are never interpreted on the host, and base64 keeps one entry on one
 * line); `N <slot>` for a requested slot that has none,
 * `MORE` when it stopped at MAX_LIST_ENTRIES, then `END`. Without `slots`, every slot.
 */
export function readScript(location: SshSyncLocation, account: string, slots?: readonly string[]): string {
  if (slots) slots.forEach(checkSlot);
  // The version is the marker's: the one the write precondition compares, whatever the file says.
  const emit = 'ver; pf "$s" "${cur:-0}"';
  const loop = slots
    ? [`for s in ${slots.map(shellQuote).join(' ')}; do`, `  if [ -f "$s.blob" ]; then ${emit}; else echo "N $s"; fi`, 'done']
    : [
        'n=0',
        'for f in *.blob; do [ -f "$f" ] || continue; s=${f%.blob}',
        '  case $s in *[!a-z2-7]*) continue;; esac; [ ${#s} -eq 26 ] || continue',
        `  n=$((n+1)); if [ "$n" -gt ${MAX_LIST_ENTRIES} ]; then echo MORE; break; fi`,
        `  ${emit}`,
        'done',
      ];
  return [prelude(location, account), `ver() {\n${READ_VERSION}\n}`, "b64() { base64 | tr -d '\\n'; }", PRINT_FILE, ...loop, 'echo END'].join('\n');
}

/**
 * `pf <slot> <version>` prints the slot's file: as an `F` line when it is one line, no larger than
 * MAX_INLINE_FILE_BYTES, exactly the size its `.z<bytes>` marker names, nothing after the newline,
 * and only the characters putScript writes (so it cannot end a line or hold a space); else as a
 * `B` line (head and `b64`, which the script defines). Builtins only on the F path: `read` stops at
 * the first newline, the marker bounds what an honest file holds, and the checks after it decide.
 */
const PRINT_FILE = [
  'pf() {',
  '  zb=; for g in "$1".z*; do zb=${g#"$1".z}; done',
  '  case $zb in ""|*[!0-9]*|?????????*) zb=0;; esac',
  `  if [ "$zb" -ge 2 ] && [ "$zb" -le ${MAX_INLINE_FILE_BYTES} ] && { IFS= read -r ln && ! IFS= read -r rest && [ -z "$rest" ]; } 2>/dev/null < "$1.blob" && [ $((\${#ln} + 1)) -eq "$zb" ]; then`,
  // Any character outside putScript's sends the file the B way (the quote is escaped for the shell).
  `    case $ln in *[!${INLINE_CHARS.replace('"', '\\"')}]*) ;; *) printf 'F %s %s %s\\n' "$1" "$2" "$ln"; return;; esac`,
  '  fi',
  `  printf 'B %s %s ' "$1" "$2"; head -c ${MAX_BLOB_FILE_BYTES} "$1.blob" | b64; echo`,
  '}',
].join('\n');

export type WatcherMode = 'auto' | 'sh';

export interface WatcherTiming {
  /** The sh loop's poll interval, in seconds (fractional sleep where the host has it). */
  readonly pollSeconds: number;
  /** How often the watcher renews its presence file, in seconds. */
  readonly heartbeatSeconds: number;
}

export const DEFAULT_WATCHER_TIMING: WatcherTiming = { pollSeconds: 0.25, heartbeatSeconds: 5 };

/**
 * The long-lived watcher of one device: renews `<slot>.s<T>` (presence) and prints
 * `S <T of its own latest heartbeat> <names…>` whenever the version and presence markers change
 * (at least once per heartbeat, since its own marker changes), each new version of another slot's
 * file first (F or B line). First line: `M inotify` or `M sh`. No process is started per change
 * (for a file that goes as an F line); the names are the shell's glob of the folder, and the client
 * checks each against a strict pattern.
 */
export function watcherScript(location: SshSyncLocation, account: string, slotId: string, mode: WatcherMode = 'auto', timing: WatcherTiming = DEFAULT_WATCHER_TIMING): string {
  checkSlot(slotId);
  const poll = Number(timing.pollSeconds);
  const beat = Math.round(Number(timing.heartbeatSeconds));
  if (!(poll > 0 && poll <= 10) || !(beat >= 1 && beat <= 300)) throw new TypeError('bad watcher timing');
  const ticksPerBeat = Math.max(1, Math.round(beat / poll));
  return [
    prelude(location, account),
    `s=${shellQuote(slotId)}; prev=; started=`,
    'hb() { t=$(date +%s); : > "$s.s$t"; for f in "$s".s*; do [ "$f" = "$s.s$t" ] || rm -f "$f"; done; }',
    // One line of base64 for the B fallback: GNU's -w0 saves a `tr` per file; elsewhere base64 | tr.
    "if base64 -w0 </dev/null >/dev/null 2>&1; then b64() { base64 -w0; }; else b64() { base64 | tr -d '\\n'; }; fi",
    PRINT_FILE,
    // Names outside [a-z0-9.] are left out (a crafted name must not break a line). A slot whose
    // version marker is new since the last line has its file printed first (F or B, as readScript
    // does), so the device needs no read of its own; not on the first line: the device lists on open.
    // The line's clock is the newest of this watcher's own heartbeat markers (`hn`, kept while there
    // is none): no `date` per line. It changes with each heartbeat, which prints a line at once.
    'emit() {',
    '  cur=; h=; for f in *.v* *.s*; do case $f in *[!a-z0-9.]*) continue;; "$s".s*) x=${f#"$s".s}',
    '    case $x in ""|*[!0-9]*|?????????????*) ;; *) [ -n "$h" ] && [ "$x" -le "$h" ] || h=$x;; esac;; esac; cur="$cur $f"; done',
    '  [ -n "$h" ] && hn=$h',
    '  [ "$cur" = "$prev" ] && return',
    '  if [ -n "$started" ]; then for f in $cur; do',
    '    case $f in *.v*) ;; *) continue;; esac',
    '    case "$prev " in *" $f "*) continue;; esac',
    '    o=${f%%.v*}; v=${f#"$o".v}',
    '    [ ${#o} -eq 26 ] && [ "$o" != "$s" ] && [ -f "$o.blob" ] || continue',
    '    pf "$o" "$v"',
    '  done; fi',
    '  started=1; prev=$cur; echo "S $hn$cur"',
    '}',
    'hb; hn=$t',
    ...(mode === 'auto'
      ? [
          'if command -v inotifywait >/dev/null 2>&1; then',
          '  echo "M inotify"; emit',
          `  ( while kill -0 $$ 2>/dev/null; do sl ${beat}; hb; done ) &`,
          // Its "Watches established." line (stderr) triggers an emit once nothing can be missed.
          '  inotifywait -m -e create,delete,moved_to,moved_from --format %f . 2>&1 | while read -r _; do emit; done',
          // inotifywait gave up (e.g. out of watches): poll instead. After a closed channel the
          // next echo below ends this shell (SIGPIPE).
          'fi',
        ]
      : []),
    'echo "M sh"; emit',
    'i=0',
    'while :; do',
    `  sl ${poll}`,
    `  i=$((i+1)); if [ "$i" -ge ${ticksPerBeat} ]; then i=0; hb; fi`,
    '  emit',
    'done',
  ].join('\n');
}

export interface WatchState {
  /**
   * Host epoch seconds of the watcher's own latest heartbeat. A heartbeat changes the watcher's
   * own marker, so the line that first carries a new value is printed at that host time; lines that
   * other changes cause carry the same value. The client extrapolates from there with its own clock.
   */
  readonly clock: number;
  readonly versions: ReadonlyMap<string, number>;
  /** Host epoch seconds of each slot's last heartbeat. */
  readonly heartbeats: ReadonlyMap<string, number>;
  /** Names that matched no pattern (a flood, or files someone else put there). */
  readonly ignored: number;
}

const VERSION_NAME = /^([a-z2-7]{26})\.v([0-9]{1,15})$/;
const PRESENCE_NAME = /^([a-z2-7]{26})\.s([0-9]{1,12})$/;
/** Slots a watch line may name; beyond this a flood is ignored (the server holds at most maxSlots). */
export const MAX_WATCH_SLOTS = 1024;

/** Parses one `S …` line of the watcher; undefined if it is not one. Bounded whatever the line holds. */
export function parseWatchLine(line: string): WatchState | undefined {
  const match = /^S ([0-9]{1,12})(?: |$)/.exec(line);
  if (!match) return undefined;
  const versions = new Map<string, number>();
  const heartbeats = new Map<string, number>();
  let ignored = 0;
  for (const name of line.slice(match[0].length).split(' ')) {
    if (name === '' || name === '*.v*' || name === '*.s*') continue;
    const version = VERSION_NAME.exec(name);
    const beat = version ? undefined : PRESENCE_NAME.exec(name);
    if (version && (versions.has(version[1]) || versions.size < MAX_WATCH_SLOTS)) {
      versions.set(version[1], Math.max(Number(version[2]), versions.get(version[1]) ?? 0));
    } else if (beat && (heartbeats.has(beat[1]) || heartbeats.size < MAX_WATCH_SLOTS)) {
      heartbeats.set(beat[1], Math.max(Number(beat[2]), heartbeats.get(beat[1]) ?? 0));
    } else {
      ignored++;
    }
  }
  return { clock: Number(match[1]), versions, heartbeats, ignored };
}

/** An `F` line: the file's own line, only in the characters putScript writes (no space, quote-safe JSON). */
const FILE_LINE = /^F ([a-z2-7]{26}) ([0-9]{1,15}) ([A-Za-z0-9+/={}":,-]+)$/;
const BASE64_LINE = /^B ([a-z2-7]{26}) ([0-9]{1,15}) ([A-Za-z0-9+/]*={0,2})$/;

/**
 * One line of readScript or of the watcher about a slot's file: `B <slot> <version> <base64>`,
 * `F <slot> <version> <the file's line>` (the same file, sent as it is) or `N <slot>` (none). Both
 * file forms go through the same checks: the slot is taken from the file's name and the version from
 * its marker, never from the file.
 */
export function parseReadLine(line: string): { slotId: string; record: unknown } | { slotId: string; missing: true } | undefined {
  const missing = /^N ([a-z2-7]{26})$/.exec(line);
  if (missing) return { slotId: missing[1], missing: true };
  const inline = FILE_LINE.exec(line);
  const match = inline ?? BASE64_LINE.exec(line);
  if (!match) return undefined;
  const text = inline ? match[3] : Buffer.from(match[3], 'base64').toString('utf8');
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch {
    record = undefined;
  }
  // The name is where the file lives (a field inside cannot claim another slot), and the version is
  // the marker's. A file that is not a blob record reads as empty data, which never opens: the
  // reader refuses it, and the slot's own device learns the version and overwrites it.
  const fields = typeof record === 'object' && record !== null && !Array.isArray(record) ? (record as Record<string, unknown>) : {};
  const data = typeof fields.data === 'string' && fields.data.length % 4 === 0 && fields.data.length <= MAX_BLOB_FILE_BYTES && /^[A-Za-z0-9+/]*={0,2}$/.test(fields.data) ? fields.data : '';
  return { slotId: match[1], record: { version: Number(match[2]), data, ...(typeof fields.updatedAt === 'string' ? { updatedAt: fields.updatedAt } : {}), slotId: match[1] } };
}
