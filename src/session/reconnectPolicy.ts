/**
 * When to retry a dropped connection: at once first, then capped exponential backoff with jitter,
 * so a fleet of tabs does not reconnect in lockstep and a flapping link is not hammered.
 */
export interface ReconnectPolicyOptions {
  /** Delay before the second attempt, in ms. */
  baseDelayMs: number;
  /** No wait is ever longer than this. */
  maxDelayMs: number;
  /** Fraction of each delay that is randomised: 0 is none, 0.5 spreads it over [50%, 100%]. */
  jitter: number;
}

export const DEFAULT_RECONNECT_POLICY: ReconnectPolicyOptions = { baseDelayMs: 500, maxDelayMs: 5000, jitter: 0.5 };

export class ReconnectPolicy {
  private attempt = 0;

  constructor(
    private readonly options: ReconnectPolicyOptions = DEFAULT_RECONNECT_POLICY,
    private readonly random: () => number = Math.random,
  ) {}

  /** The wait before the next attempt, in ms; each call counts one attempt. */
  nextDelay(): number {
    const attempt = this.attempt++;
    if (attempt === 0) return 0;
    const exponential = this.options.baseDelayMs * 2 ** Math.min(attempt - 1, 30);
    const capped = Math.min(this.options.maxDelayMs, exponential);
    const jitter = Math.min(1, Math.max(0, this.options.jitter));
    return Math.round(capped * (1 - jitter * this.random()));
  }

  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
