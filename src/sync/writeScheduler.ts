/**
 * When this slot's blob is written (issue 13). A change after a quiet moment goes out at once (no
 * debounce on a single change's path); changes that follow within `windowMs` of the last write's
 * start, or while a write is in flight, are coalesced into one follow-up write at the end of the
 * window. So a burst of changes shorter than the window makes at most two writes, and a longer one
 * at most one write per window. At most one write runs at a time.
 *
 * Pure: the clock and timers are injected, so the policy is unit-tested with a fake clock.
 */

export interface SchedulerClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: SchedulerClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface WriteSchedulerOptions {
  /** Follow-up changes within this long of the last write's start are grouped into one write. */
  readonly windowMs: number;
  readonly clock?: SchedulerClock;
}

export interface WriteOutcome {
  /** The write failed: try again after this long (changes in the meantime ride along). */
  readonly retryInMs?: number;
}

export class WriteScheduler {
  private readonly clock: SchedulerClock;
  private timer: unknown;
  private timerDue = 0;
  private inFlight: Promise<void> | undefined;
  /** A change arrived while a write was running: it needs a follow-up. */
  private followUp = false;
  private lastStart = -Infinity;
  private disposed = false;

  /**
   * `write` writes whatever is pending (a no-op when nothing is). It answers `{ retryInMs }` when it
   * failed and wants another attempt after a backoff; a throw counts as done.
   */
  constructor(private readonly write: () => Promise<WriteOutcome | void>, private readonly options: WriteSchedulerOptions) {
    this.clock = options.clock ?? realClock;
  }

  /** A local change: write now if quiet, else fold it into the next write. */
  changed(): void {
    if (this.disposed) return;
    if (this.inFlight) {
      this.followUp = true;
      return;
    }
    if (this.timer !== undefined) return; // already coming: this change rides along
    const wait = this.lastStart + this.options.windowMs - this.clock.now();
    if (wait <= 0) void this.run();
    else this.arm(wait);
  }

  /** Writes after `ms` (a retry with backoff, or at once when the server is back), replacing any timer. */
  retryIn(ms: number): void {
    if (this.disposed) return;
    if (this.inFlight) {
      this.followUp = true;
      return;
    }
    this.cancelTimer();
    if (ms <= 0) void this.run();
    else this.arm(ms);
  }

  /** Cancels any timer, waits for a running write, then writes now. */
  async flush(): Promise<void> {
    this.cancelTimer();
    this.followUp = false;
    if (this.inFlight) await this.inFlight;
    this.cancelTimer(); // the write that just ended may have armed a follow-up
    this.followUp = false;
    if (this.disposed) return;
    await this.run();
  }

  /** True while a write is running or one is scheduled. */
  get busy(): boolean {
    return this.inFlight !== undefined || this.timer !== undefined;
  }

  /** The pending timer's delay from now, for tests and logs; undefined if none. */
  get scheduledIn(): number | undefined {
    return this.timer === undefined ? undefined : Math.max(0, this.timerDue - this.clock.now());
  }

  dispose(): void {
    this.disposed = true;
    this.cancelTimer();
    this.followUp = false;
  }

  private arm(ms: number): void {
    this.timerDue = this.clock.now() + ms;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, ms);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private run(): Promise<void> {
    if (this.inFlight) {
      this.followUp = true;
      return this.inFlight;
    }
    this.lastStart = this.clock.now();
    const running = this.write()
      .catch(() => undefined)
      .then((outcome) => {
        this.inFlight = undefined;
        if (this.disposed) return;
        if (outcome && outcome.retryInMs !== undefined) {
          // A failed write comes back after its backoff, whatever else changed meanwhile.
          this.followUp = false;
          this.cancelTimer();
          this.arm(Math.max(0, outcome.retryInMs));
        } else if (this.followUp) {
          this.followUp = false;
          if (this.timer === undefined) {
            const wait = this.lastStart + this.options.windowMs - this.clock.now();
            if (wait <= 0) void this.run();
            else this.arm(wait);
          }
        }
      });
    this.inFlight = running;
    return running;
  }
}
