export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** Source of randomness in [0, 1); injectable so tests are deterministic. */
  readonly random?: () => number;
}

/**
 * Capped exponential backoff with jitter. The delay is drawn from [base/2, base], where base
 * doubles per failure up to maxMs, so many clients that lost one server don't return in lockstep.
 */
export class Backoff {
  private failures = 0;

  constructor(private readonly options: BackoffOptions) {}

  /** The delay before the next attempt; counts one more failure. */
  next(): number {
    const base = Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    const random = this.options.random ?? Math.random;
    return Math.round(base / 2 + (base / 2) * random());
  }

  reset(): void {
    this.failures = 0;
  }

  get attempts(): number {
    return this.failures;
  }
}
