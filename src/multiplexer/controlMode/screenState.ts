/**
 * State sync for the control-mode driver (pure): one batched tmux command line that reads a pane's
 * whole state, and a writer that turns the replies into the exact bytes that rebuild that state in
 * an empty terminal (xterm.js in VS Code).
 *
 * The command line (tmux runs the commands of one line back to back, with no pane output parsed in
 * between, so the four replies describe one instant):
 *   1. `display -p -t <pane> '<format>'`: cursor, modes, scroll region, alternate screen, mouse
 *      modes, history size and pane size, as `key=value` words after a `tether-state` tag;
 *   2. `capture-pane -p -e -J -S -<N> -E -1`: up to N lines of history, wrapped lines joined, so
 *      the terminal rewraps them itself (left out when N is 0; ignored when history_size is 0,
 *      because tmux then captures visible row 0 instead). An append after a flood reads rows
 *      instead (no -J), so that rows can be counted;
 *   3. `capture-pane -a -q -p -e`: the saved normal screen while the alternate screen is on (tmux
 *      3.3a: `-a` reads the saved grid; `-q` makes it empty rather than an error without one);
 *   4. `capture-pane -p -e -S 0 -E -`: the visible screen, without -J, one line per row.
 *
 * renderSync emits: RIS (the terminal becomes exactly the host's state, its old scrollback
 * included), the history lines (they scroll into real scrollback), the normal screen padded to the
 * terminal's rows; for the alternate screen, the cursor saved by tmux, `CSI ?1049h` and the
 * alternate contents; then SGR reset, scroll region, origin mode, cursor position, and the modes.
 * renderAppend (the end of a flood) does the same without RIS, keeping the scrollback, and
 * renderPaint repaints the visible rows only (during a flood).
 * tmux's `-e` output carries SGR state from one line to the next within one capture (each capture
 * starts from the default), so each line break resets SGR before CR LF (a scrolled-in line must
 * not take a background colour) and re-applies it after; lines cut off the front of a capture
 * still count (`historySgr`).
 */

import { shellQuote } from '../../common/quoting';

export interface PaneState {
  paneId: number;
  width: number;
  height: number;
  cursorX: number;
  cursorY: number;
  cursorVisible: boolean;
  insert: boolean;
  appCursor: boolean;
  appKeypad: boolean;
  wrap: boolean;
  origin: boolean;
  scrollTop: number;
  scrollBottom: number;
  alternate: boolean;
  altSavedX: number;
  altSavedY: number;
  mouseStandard: boolean;
  mouseButton: boolean;
  mouseAll: boolean;
  mouseSgr: boolean;
  mouseUtf8: boolean;
  historySize: number;
  /** The pane's history-limit: tmux drops the oldest tenth of the history when it reaches this. */
  historyLimit: number;
  /** Tab stop columns (`pane_tabs`); undefined when tmux did not say. */
  tabStops: number[] | undefined;
  /** Bracketed paste (`bracketed_paste`, newer tmux; undefined on tmux that lacks the format). */
  bracketedPaste: boolean | undefined;
  /** DECSCUSR's shape (`cursor_shape`, newer tmux); undefined when tmux did not say. */
  cursorShape: 'default' | 'block' | 'underline' | 'bar' | undefined;
  cursorBlinking: boolean | undefined;
}

export interface SyncSnapshot {
  state: PaneState;
  history: string[];
  /** The SGR in force before the first history line, from capture lines cut off before it. */
  historySgr?: string;
  /** The normal screen, when the alternate screen is on. */
  normal: string[] | undefined;
  screen: string[];
}

export interface SyncReply {
  error: boolean;
  lines: string[];
}

const STATE_TAG = 'tether-state';

const FIELDS = [
  'pane_id', 'pane_width', 'pane_height', 'cursor_x', 'cursor_y', 'cursor_flag', 'insert_flag',
  'keypad_cursor_flag', 'keypad_flag', 'wrap_flag', 'origin_flag', 'scroll_region_upper',
  'scroll_region_lower', 'alternate_on', 'alternate_saved_x', 'alternate_saved_y',
  'mouse_standard_flag', 'mouse_button_flag', 'mouse_all_flag', 'mouse_sgr_flag', 'mouse_utf8_flag',
  'history_size', 'history_limit', 'pane_tabs', 'bracketed_paste', 'cursor_shape', 'cursor_blinking',
] as const;

export const STATE_FORMAT = `${STATE_TAG} ${FIELDS.map((field) => `${field}=#{${field}}`).join(' ')}`;

export interface SyncCommands {
  /** tmux commands, to be joined with ` ; ` (possibly after other commands) on one line. */
  commands: string[];
  historyLines: number;
  /** History captured as rows (no -J): one line per row, so rows can be counted. */
  rows: boolean;
}

/** Most history lines one sync reads. */
export const MAX_SYNC_HISTORY_LINES = 10_000_000;

/**
 * The commands that read the state of `target` (a pane id such as `%3`, or `=tether_<id>:`).
 * History comes as logical lines (wrapped rows joined, so the terminal rewraps them), or with
 * `rows`, as one line per row of tmux's grid (an append sync counts rows).
 */
export function syncCommands(target: string, historyLines: number, options: { rows?: boolean } = {}): SyncCommands {
  const t = shellQuote(target);
  const lines = Math.max(0, Math.min(MAX_SYNC_HISTORY_LINES, Math.trunc(Number.isFinite(historyLines) ? historyLines : 0)));
  const commands = [stateCommand(target)];
  if (lines > 0) commands.push(`capture-pane -p -e${options.rows ? '' : ' -J'} -t ${t} -S -${lines} -E -1`);
  commands.push(`capture-pane -a -q -p -e -t ${t}`);
  commands.push(screenCommand(target));
  return { commands, historyLines: lines, rows: options.rows ?? false };
}

/** `display-message` of the pane's state (parsePaneState reads its reply). */
export function stateCommand(target: string): string {
  return `display-message -p -t ${shellQuote(target)} ${shellQuote(STATE_FORMAT)}`;
}

/** `capture-pane` of the visible screen, one line per row, with escapes. */
export function screenCommand(target: string): string {
  return `capture-pane -p -e -t ${shellQuote(target)} -S 0 -E -`;
}

export class SyncError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SyncError';
  }
}

/** Reads the replies to `syncCommands` (in order, one per command). */
export function parseSyncReplies(sync: SyncCommands, replies: readonly SyncReply[]): SyncSnapshot {
  if (replies.length !== sync.commands.length) throw new SyncError(`expected ${sync.commands.length} replies, got ${replies.length}`);
  const failed = replies.findIndex((reply, index) => reply.error && !(index === replies.length - 2));
  if (failed >= 0) throw new SyncError(`${sync.commands[failed].split(' ')[0]} failed: ${replies[failed].lines.join(' ').slice(0, 200)}`);
  const state = parseStateReply(replies[0]);
  const history = sync.historyLines > 0 && state.historySize > 0 ? replies[1].lines : [];
  const normalReply = replies[replies.length - 2];
  const normal = state.alternate && !normalReply.error ? normalReply.lines : undefined;
  const snapshot = { state, history, normal, screen: replies[replies.length - 1].lines };
  return sync.rows ? snapshot : keepHistoryTail(snapshot, sync.historyLines);
}

/** The snapshot with only its last `count` history lines; the SGR that the lines cut off carried
 * goes with it (`historySgr`). */
export function keepHistoryTail(snapshot: SyncSnapshot, count: number): SyncSnapshot {
  const cut = snapshot.history.length - Math.max(0, count);
  if (cut <= 0) return snapshot;
  return { ...snapshot, history: snapshot.history.slice(cut), historySgr: carriedSgr([snapshot.historySgr ?? '', ...snapshot.history.slice(0, cut)]) };
}

/** The pane state in a `stateCommand` reply. */
export function parseStateReply(reply: SyncReply): PaneState {
  if (reply.error) throw new SyncError(`display-message failed: ${reply.lines.join(' ').slice(0, 200)}`);
  return parsePaneState(reply.lines.find((line) => line.startsWith(`${STATE_TAG} `)) ?? '');
}

export function parsePaneState(line: string): PaneState {
  if (!line.startsWith(`${STATE_TAG} `)) throw new SyncError('the pane state line is missing');
  const values = new Map<string, string>();
  for (const word of line.slice(STATE_TAG.length + 1).split(' ')) {
    const eq = word.indexOf('=');
    if (eq > 0) values.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const num = (key: string, fallback: number): number => {
    const value = values.get(key);
    if (value === undefined || !/^\d+$/.test(value)) return fallback;
    return Number(value);
  };
  const flag = (key: string, fallback = false): boolean => {
    const value = values.get(key);
    return value === '1' ? true : value === '0' ? false : fallback;
  };
  const paneId = /^%(\d+)$/.exec(values.get('pane_id') ?? '');
  if (!paneId) throw new SyncError(`no pane id in ${JSON.stringify(line.slice(0, 200))}`);
  const height = num('pane_height', 24);
  const saved = (key: string): number => {
    const value = num(key, -1);
    return value > 100_000 ? -1 : value; // tmux prints UINT_MAX when nothing is saved
  };
  return {
    paneId: Number(paneId[1]),
    width: num('pane_width', 80),
    height,
    cursorX: num('cursor_x', 0),
    cursorY: num('cursor_y', 0),
    cursorVisible: flag('cursor_flag', true),
    insert: flag('insert_flag'),
    appCursor: flag('keypad_cursor_flag'),
    appKeypad: flag('keypad_flag'),
    wrap: flag('wrap_flag', true),
    origin: flag('origin_flag'),
    scrollTop: num('scroll_region_upper', 0),
    scrollBottom: num('scroll_region_lower', height - 1),
    alternate: flag('alternate_on'),
    altSavedX: saved('alternate_saved_x'),
    altSavedY: saved('alternate_saved_y'),
    mouseStandard: flag('mouse_standard_flag'),
    mouseButton: flag('mouse_button_flag'),
    mouseAll: flag('mouse_all_flag'),
    mouseSgr: flag('mouse_sgr_flag'),
    mouseUtf8: flag('mouse_utf8_flag'),
    historySize: num('history_size', 0),
    historyLimit: num('history_limit', 0),
    tabStops: tabStops(values.get('pane_tabs')),
    bracketedPaste: known(values.get('bracketed_paste')),
    cursorShape: cursorShape(values.get('cursor_shape')),
    cursorBlinking: known(values.get('cursor_blinking')),
  };
}

/** "1" or "0"; anything else (empty: a tmux without the format) is unknown. */
function known(value: string | undefined): boolean | undefined {
  return value === '1' ? true : value === '0' ? false : undefined;
}

/** `pane_tabs`: comma-separated columns, e.g. "8,16,24". Empty is unknown: a tmux without the
 * format says the same as a pane without tab stops, and keeping RIS's stops is the safer guess. */
function tabStops(value: string | undefined): number[] | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^\d{1,4}(,\d{1,4}){0,999}$/.test(value)) return undefined;
  return value.split(',').map(Number);
}

function cursorShape(value: string | undefined): PaneState['cursorShape'] {
  return value === 'default' || value === 'block' || value === 'underline' || value === 'bar' ? value : undefined;
}

const ESC = '\x1b';
const CSI = `${ESC}[`;

/** Tracks the SGR state that tmux's `-e` capture carries across lines. */
class SgrCarry {
  private active: string[] = [];

  feed(line: string): void {
    const sgr = /\x1b\[([0-9;:]*)m/g;
    for (let match = sgr.exec(line); match; match = sgr.exec(line)) {
      const first = match[1].split(/[;:]/)[0];
      if (first === '' || first === '0') this.active = [];
      if (match[1] !== '' && match[1] !== '0') this.active.push(match[0]);
    }
  }

  get reapply(): string {
    return this.active.join('');
  }

  reset(): void {
    this.active = [];
  }
}

/** The SGR that tmux's `-e` capture carries into the line after `lines`. */
function carriedSgr(lines: readonly string[]): string {
  const carry = new SgrCarry();
  for (const line of lines) carry.feed(line);
  return carry.reapply;
}

/** Writes lines top to bottom; each break resets SGR, goes to the next line and re-applies it.
 * With `erase`, each line is cleared first (it may be overwriting a row that shows something).
 * At index `freshAt` another capture begins: it carries nothing from the lines before. */
function writeLines(lines: readonly string[], carry: SgrCarry, erase = false, freshAt = -1): string {
  const clear = erase ? `${CSI}2K` : '';
  let out = '';
  lines.forEach((line, index) => {
    if (index === freshAt) carry.reset();
    out += index > 0 ? `${CSI}0m\r\n${clear}${carry.reapply}` : `${clear}${carry.reapply}`;
    carry.feed(line);
    out += line;
  });
  return out;
}

function fit(lines: readonly string[], rows: number): string[] {
  const out = lines.slice(0, Math.max(lines.length, rows));
  while (out.length < rows) out.push('');
  return out;
}

/**
 * What a render may assume of the modes it does not turn on: after RIS they are all off ('reset');
 * after an append (no RIS) each known mode is written either way ('explicit').
 */
type ModeBase = 'reset' | 'explicit';

/** What an append resets in place of RIS before it writes the modes the pane has on (bracketed
 * paste and the cursor shape only when tmux reports them: see renderTail): also modes tmux does
 * not report, which the stream cut at the flood's mark may have left on (charset, reverse video,
 * focus events, other mouse encodings, synchronized output). */
const MODES_OFF =
  `${CSI}0m${ESC}(B\x0f${CSI}?6l${CSI}r${CSI}?7h${CSI}4l${CSI}?1l${ESC}>${CSI}?5l${CSI}?1004l${CSI}?2026l` +
  `${CSI}?9l${CSI}?1000l${CSI}?1001l${CSI}?1002l${CSI}?1003l${CSI}?1005l${CSI}?1006l${CSI}?1015l${CSI}?25h`;

/**
 * The bytes that rebuild a snapshot in a terminal of `rows` rows. The terminal is assumed to have
 * the pane's width (the driver sizes the pane to the terminal before it syncs).
 */
export function renderSync(snapshot: SyncSnapshot, rows: number = snapshot.state.height): string {
  return `${ESC}c${renderContent(snapshot, rows, 'reset')}`;
}

/**
 * The bytes that bring a terminal up to a snapshot without RIS, keeping its scrollback: the
 * terminal's scrollback holds tmux's history rows up to some row H, and its screen rows H and on
 * (or anything else: a flood's paints). The snapshot's history is rows H … H+n-1, one line per
 * row (keepHistoryTail), n being the rows that scrolled into tmux's history since. The screen is
 * rewritten from its top row (rows H on), so exactly those n rows scroll into the scrollback,
 * after what it held.
 */
export function renderAppend(snapshot: SyncSnapshot, rows: number = snapshot.state.height): string {
  return `${CSI}?1049l${MODES_OFF}${CSI}H${renderContent(snapshot, rows, 'explicit')}`;
}

/**
 * A repaint of the visible screen only (a flood's display-rate poll): each row is cleared and
 * written in place with autowrap off (a row the terminal measures wider than tmux did must not
 * wrap and scroll), so nothing scrolls and the scrollback is untouched; then the cursor. Modes,
 * the scroll region and the history are left to the sync that ends the flood.
 */
export function renderPaint(state: PaneState, screen: readonly string[], rows: number, onAlternate: boolean): string {
  let out = state.alternate === onAlternate ? '' : `${CSI}?1049${state.alternate ? 'h' : 'l'}`;
  out += `${CSI}0m${CSI}?6l${CSI}?7l`;
  const shift = Math.max(0, screen.length - rows);
  const shown = screen.slice(shift);
  const carry = new SgrCarry();
  for (let row = 0; row < rows; row++) {
    out += `${CSI}${row + 1};1H${CSI}2K`;
    if (row >= shown.length) continue;
    out += carry.reapply;
    carry.feed(shown[row]);
    out += `${shown[row]}${CSI}0m`;
  }
  out += cup(state.cursorY - shift, state.cursorX, rows);
  out += `${CSI}?7h${CSI}?25${state.cursorVisible ? 'h' : 'l'}`;
  return out;
}

function renderContent(snapshot: SyncSnapshot, rows: number, base: ModeBase): string {
  const { state, history } = snapshot;
  const carry = new SgrCarry();
  carry.feed(snapshot.historySgr ?? '');
  const normal = state.alternate && snapshot.normal ? snapshot.normal : state.alternate ? [] : snapshot.screen;
  // Rows beyond the terminal's height scroll off the top (into scrollback): shift the cursor.
  const extra = Math.max(0, normal.length - rows);
  let out = writeLines([...history, ...fit(normal, rows)], carry, base === 'explicit', history.length);
  out += `${CSI}0m`;
  carry.reset();
  let shift = extra;
  if (state.alternate) {
    if (state.altSavedX >= 0 && state.altSavedY >= 0) out += cup(state.altSavedY - extra, state.altSavedX, rows);
    out += `${CSI}?1049h${CSI}H`;
    const screen = snapshot.screen.slice(Math.max(0, snapshot.screen.length - rows));
    shift = Math.max(0, snapshot.screen.length - rows);
    out += writeLines(screen, carry);
    out += `${CSI}0m`;
  }
  return out + renderTail(state, shift, rows, base);
}

/** Tab stops, scroll region, cursor and modes, after the contents. */
function renderTail(state: PaneState, shift: number, rows: number, base: ModeBase): string {
  let out = tabStopBytes(state.tabStops, state.width, base);
  const top = Math.max(0, state.scrollTop - shift);
  const bottom = Math.min(rows - 1, state.scrollBottom - shift);
  if (top !== 0 || bottom !== rows - 1) out += `${CSI}${top + 1};${bottom + 1}r`;
  if (state.origin) out += `${CSI}?6h`;
  const cursorY = state.cursorY - shift - (state.origin ? top : 0);
  out += cup(cursorY, state.cursorX, rows);
  if (!state.wrap) out += `${CSI}?7l`;
  if (state.insert) out += `${CSI}4h`;
  if (state.appCursor) out += `${CSI}?1h`;
  if (state.appKeypad) out += `${ESC}=`;
  if (state.mouseStandard) out += `${CSI}?1000h`;
  if (state.mouseButton) out += `${CSI}?1002h`;
  if (state.mouseAll) out += `${CSI}?1003h`;
  if (state.mouseUtf8) out += `${CSI}?1005h`;
  if (state.mouseSgr) out += `${CSI}?1006h`;
  if (!state.cursorVisible) out += `${CSI}?25l`;
  // Unknown (a tmux without the format) is left as the terminal has it.
  if (state.bracketedPaste) out += `${CSI}?2004h`;
  else if (state.bracketedPaste === false && base === 'explicit') out += `${CSI}?2004l`;
  out += cursorStyle(state, base);
  return out;
}

/** The pane's tab stops: all cleared, then each set (HTS at its column). After RIS, nothing when
 * they are RIS's own (every 8 columns); an append cannot rely on RIS, so it always writes them. */
function tabStopBytes(stops: readonly number[] | undefined, width: number, base: ModeBase): string {
  if (stops === undefined) return '';
  const inside = stops.filter((column) => column > 0 && column < width);
  const standard = Array.from({ length: Math.ceil(width / 8) - 1 }, (_, index) => (index + 1) * 8).filter((column) => column < width);
  if (base === 'reset' && inside.length === standard.length && inside.every((column, index) => column === standard[index])) return '';
  return `${CSI}3g${inside.map((column) => `${CSI}${column + 1}G${ESC}H`).join('')}`;
}

/** DECSCUSR for the pane's cursor; nothing when tmux did not say, or says default after RIS. */
function cursorStyle(state: PaneState, base: ModeBase): string {
  if (state.cursorShape === undefined) return '';
  if (state.cursorShape === 'default') return base === 'explicit' ? `${CSI}0 q` : '';
  const steady = state.cursorBlinking === false ? 1 : 0;
  const shape = { block: 1, underline: 3, bar: 5 }[state.cursorShape];
  return `${CSI}${shape + steady} q`;
}

function cup(y: number, x: number, rows: number): string {
  return `${CSI}${Math.max(0, Math.min(rows - 1, y)) + 1};${Math.max(0, x) + 1}H`;
}
