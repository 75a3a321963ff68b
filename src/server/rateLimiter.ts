/** Token bucket rate limiting keyed by string (token hash or client IP). Clock is injectable for tests. */

export interface RateLimiterOptions {
  /** Tokens added per second. */
  ratePerSecond: number;
  /** Bucket capacity: how many requests may arrive at once after a quiet period. */
  burst: number;
  /** Upper bound on tracked keys, so a flood of distinct IPs cannot grow memory without limit. */
  maxKeys?: number;
  /** Milliseconds on a monotonic clock. */
  now?: () => number;
}

export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class TokenBucketLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly ratePerMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(options: RateLimiterOptions) {
    if (!(options.ratePerSecond > 0) || !(options.burst >= 1)) {
      throw new RangeError('rate limiter needs ratePerSecond > 0 and burst >= 1');
    }
    this.ratePerMs = options.ratePerSecond / 1000;
    this.burst = options.burst;
    this.maxKeys = options.maxKeys ?? 100_000;
    this.now = options.now ?? (() => performance.now());
  }

  take(key: string, cost = 1): RateDecision {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.updatedAt) * this.ratePerMs);
      bucket.updatedAt = now;
      // Re-insert so Map order tracks recency for eviction.
      this.buckets.delete(key);
    } else {
      bucket = { tokens: this.burst, updatedAt: now };
      this.evictIfFull(now);
    }
    this.buckets.set(key, bucket);
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost;
      return { allowed: true };
    }
    return { allowed: false, retryAfterMs: Math.ceil((cost - bucket.tokens) / this.ratePerMs) };
  }

  get size(): number {
    return this.buckets.size;
  }

  private evictIfFull(now: number): void {
    if (this.buckets.size < this.maxKeys) return;
    // First drop buckets that have refilled: forgetting them changes no decision.
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.updatedAt) * this.ratePerMs >= this.burst) this.buckets.delete(key);
    }
    // Then the least recently used, which forgives a little debt but keeps memory bounded.
    while (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next();
      if (oldest.done) break;
      this.buckets.delete(oldest.value);
    }
  }
}
