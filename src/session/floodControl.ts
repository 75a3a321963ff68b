/**
 * The flood path of the control-mode driver (pure parts; docs/architecture.md, "Floods").
 *
 * tmux writes every byte of a pane to a control client, octal-escaped, at about three times the
 * server CPU that a `tmux attach` costs, where tmux only redraws the screen. So while a pane
 * writes faster than a person reads, the driver stops taking its output (`refresh-client -A
 * '%<pane>:pause'`), shows the screen by polling `capture-pane` at display rate, and when the
 * pane calms down, resumes and appends the rows that scrolled into tmux's history meanwhile.
 *
 * - OutputRate says when a pane's output has stayed above a rate for a whole window.
 * - estimatedRate tells, from two polls, how fast a paused pane still writes (we see no bytes).
 * - resumeRows / rowsToAppend decide how much history a resume reads, and whether an exact
 *   append is possible; when it is not (history trimmed or cleared, more rows than the replay
 *   limit, the size changed), the driver falls back to a full sync.
 */

import type { PaneState } from '../multiplexer/controlMode/screenState';

export interface FloodOptions {
  /** A pane whose output stays above this for `windowMs` is paused. 0 turns the flood path off. */
  enterBytesPerSecond: number;
  /** A paused pane is resumed once its estimated rate is below this. */
  exitBytesPerSecond: number;
  windowMs: number;
  /** A pane whose output tmux says waited this long for us (`%extended-output` age) is paused too. */
  behindMs: number;
  /** Least time between two polls of a paused pane (33 ms: at most 30 a second). */
  pollIntervalMs: number;
}

export const DEFAULT_FLOOD_OPTIONS: FloodOptions = {
  enterBytesPerSecond: 2_000_000,
  exitBytesPerSecond: 500_000,
  windowMs: 200,
  behindMs: 300,
  pollIntervalMs: 33,
};

/** Bytes seen over a sliding window, kept in fixed slots. */
export class OutputRate {
  private readonly slots: { index: number; bytes: number }[] = [];
  private total = 0;
  /** When the current run of output began (the window was empty before it). */
  private since: number | undefined;

  private readonly slotMs: number;

  /** `slotMs` is shrunk to a quarter of the window at most, so a window spans several slots. */
  constructor(
    readonly windowMs: number,
    slotMs = 20,
  ) {
    this.slotMs = Math.max(1, Math.min(slotMs, windowMs / 4));
  }

  add(bytes: number, now: number): void {
    const index = Math.floor(now / this.slotMs);
    this.expire(index);
    if (this.slots.length === 0) this.since = now;
    const last = this.slots[this.slots.length - 1];
    if (last && last.index === index) last.bytes += bytes;
    else this.slots.push({ index, bytes });
    this.total += bytes;
  }

  /** True once output has run for a whole window and the window holds `bytesPerSecond`'s worth. */
  sustained(bytesPerSecond: number, now: number): boolean {
    this.expire(Math.floor(now / this.slotMs));
    if (this.since === undefined || now - this.since < this.windowMs) return false;
    return this.total * 1000 >= bytesPerSecond * this.windowMs;
  }

  reset(): void {
    this.slots.length = 0;
    this.total = 0;
    this.since = undefined;
  }

  private expire(index: number): void {
    const oldest = index - Math.ceil(this.windowMs / this.slotMs);
    while (this.slots.length > 0 && this.slots[0].index <= oldest) this.total -= this.slots.shift()!.bytes;
    if (this.slots.length === 0) this.since = undefined;
  }
}

/** What one poll of a paused pane saw. */
export interface PollSample {
  at: number;
  historySize: number;
  historyLimit: number;
  cursorX: number;
  cursorY: number;
  alternate: boolean;
  screen: readonly string[];
}

/**
 * Bytes per second a paused pane wrote between two polls, as far as tmux's state shows: the rows
 * that scrolled into history, each at the screen's mean row length, plus the rows of the screen
 * that changed. Infinity when history shrank (trimmed or cleared: the scrolled rows are unknown)
 * and the screen changed. Near history-limit, where tmux trims a tenth at a time, a small growth
 * may hide thousands of rows: it counts only if the screen moved up by exactly that many rows.
 */
export function estimatedRate(previous: PollSample, next: PollSample): number {
  const seconds = Math.max(0.001, (next.at - previous.at) / 1000);
  const scrolled = next.historySize - previous.historySize;
  const same = scrolled === 0 && next.alternate === previous.alternate && next.cursorX === previous.cursorX && next.cursorY === previous.cursorY && sameRows(previous.screen, next.screen);
  if (same) return 0;
  if (scrolled < 0) return Infinity;
  if (mayHaveTrimmed(next.historySize, next.historyLimit) && !shiftedBy(previous.screen, next.screen, scrolled)) return Infinity;
  const rowBytes = next.screen.reduce((sum, row) => sum + Buffer.byteLength(row) + 1, 0) / Math.max(1, next.screen.length);
  let changed = 0;
  next.screen.forEach((row, index) => {
    if (previous.screen[index + scrolled] !== row) changed += Buffer.byteLength(row) + 1;
  });
  return (scrolled * rowBytes + changed) / seconds;
}

/** The screen moved up by `rows` rows: each row of `next` but the last few is the row `rows` below
 * it in `previous` (its last row may have been half written then). */
function shiftedBy(previous: readonly string[], next: readonly string[], rows: number): boolean {
  const compared = Math.min(previous.length, next.length) - rows - 1;
  if (compared <= 0) return false;
  for (let index = 0; index < compared; index++) if (next[index] !== previous[index + rows]) return false;
  return true;
}

/**
 * How many calm polls in a row end a flood. A flood that starts again within a second of the last
 * one ending was not over (the estimate can mistake a flood for calm, e.g. rows all alike while
 * tmux trims), so each quick return doubles the polls asked for, up to 16 (about half a second);
 * after 5 s without a flood it is back to one.
 */
export function calmPollsNeeded(previousNeed: number, sinceLastFloodMs: number): number {
  if (sinceLastFloodMs < 1000) return Math.min(16, previousNeed * 2);
  return sinceLastFloodMs > 5000 ? 1 : previousNeed;
}

function sameRows(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((row, index) => row === b[index]);
}

/** Where the terminal stood when the flood began: its screen shows tmux's rows from here on. */
export interface FloodMark {
  historySize: number;
  historyLimit: number;
}

/**
 * True when tmux may have dropped history rows: it trims the oldest tenth once the history
 * reaches history-limit, and afterwards never holds fewer than nine tenths until it is cleared.
 */
export function mayHaveTrimmed(historySize: number, historyLimit: number): boolean {
  return historyLimit > 0 && historySize >= historyLimit - Math.floor(historyLimit / 10);
}

/** Rows of history an append resume reads: those the polls saw scroll by, and a margin for rows
 * that scroll between the last poll and the resume (a resume comes after a calm poll). */
export function resumeRows(mark: FloodMark, lastHistorySize: number, rows: number): number {
  return Math.max(0, lastHistorySize - mark.historySize) + 2 * Math.max(1, rows);
}

/**
 * The history rows to append after a flood, read from an append resume that asked for `requested`
 * rows; undefined when an exact append is impossible and the driver must run a full sync.
 * `moved`: a poll saw the history size change.
 */
export function rowsToAppend(mark: FloodMark, state: PaneState, captured: readonly string[], requested: number, moved: boolean): string[] | undefined {
  const scrolled = state.historySize - mark.historySize;
  if (scrolled < 0 || scrolled > requested) return undefined;
  if ((scrolled > 0 || moved) && mayHaveTrimmed(state.historySize, state.historyLimit)) return undefined;
  // tmux returns exactly min(requested, history size) rows; anything else is not what we asked.
  if (captured.length !== Math.min(requested, state.historySize)) return undefined;
  return scrolled === 0 ? [] : captured.slice(-scrolled);
}
