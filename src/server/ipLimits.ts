/** Per-address bookkeeping for the server's caps (connections, streams, new accounts). Pure; clock injectable. */

/** How many of something each key holds right now (open sockets, open streams). */
export class ConcurrencyCounter {
  private readonly counts = new Map<string, number>();

  /** Takes one unit for `key` unless it already holds `max`. */
  tryAcquire(key: string, max: number): boolean {
    const current = this.counts.get(key) ?? 0;
    if (current >= max) return false;
    this.counts.set(key, current + 1);
    return true;
  }

  release(key: string): void {
    const current = this.counts.get(key) ?? 0;
    if (current <= 1) this.counts.delete(key);
    else this.counts.set(key, current - 1);
  }

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Keys holding anything: bounded by the open sockets, so no eviction is needed. */
  get size(): number {
    return this.counts.size;
  }
}

export interface NewAccountLimiterOptions {
  /** New (empty) accounts one address may start using per window. */
  maxPerWindow: number;
  windowMs?: number;
  /** Addresses tracked at once; the least recently active is forgotten first. */
  maxAddresses?: number;
  now?: () => number;
}

export type AdmissionDecision = { allowed: true; counted: boolean } | { allowed: false; retryAfterMs: number };

interface Seen {
  expiresAt: number;
  /** Whether the account was empty when this address first used it (and so spends the budget). */
  counted: boolean;
}

/**
 * "New accounts per address per hour". Every well-formed token names a valid empty account, so
 * inventing tokens costs nothing; this bounds how many accounts without any slot one address may
 * start using in a window. An account that already holds slots never spends the budget, and each
 * (address, account) pair is looked up once per window, so the store sees one cheap query per pair.
 */
export class NewAccountLimiter {
  private readonly byAddress = new Map<string, Map<string, Seen>>();
  private readonly windowMs: number;
  private readonly maxAddresses: number;
  private readonly now: () => number;

  constructor(private readonly options: NewAccountLimiterOptions) {
    this.windowMs = options.windowMs ?? 3_600_000;
    this.maxAddresses = options.maxAddresses ?? 100_000;
    this.now = options.now ?? (() => performance.now());
  }

  async admit(address: string, account: string, isEmpty: () => Promise<boolean>): Promise<AdmissionDecision> {
    const now = this.now();
    let seen = this.byAddress.get(address);
    if (seen) {
      for (const [key, entry] of seen) if (entry.expiresAt <= now) seen.delete(key);
      // Re-insert so Map order tracks recency for eviction.
      this.byAddress.delete(address);
    } else {
      seen = new Map();
      while (this.byAddress.size >= this.maxAddresses) {
        const oldest = this.byAddress.keys().next();
        if (oldest.done) break;
        this.byAddress.delete(oldest.value);
      }
    }
    this.byAddress.set(address, seen);
    if (seen.has(account)) return { allowed: true, counted: false };

    const counted = [...seen.values()].filter((entry) => entry.counted);
    if (counted.length >= this.options.maxPerWindow) {
      // Over budget: only an account that already exists may still be used.
      if (!(await isEmpty())) {
        this.remember(seen, account, now, false);
        return { allowed: true, counted: false };
      }
      const soonest = Math.min(...counted.map((entry) => entry.expiresAt));
      return { allowed: false, retryAfterMs: Math.max(1, soonest - now) };
    }
    // Under budget: reserve before the lookup so two concurrent first requests spend it once.
    this.remember(seen, account, now, true);
    if (!(await isEmpty())) this.remember(seen, account, now, false);
    return { allowed: true, counted: seen.get(account)?.counted ?? false };
  }

  private remember(seen: Map<string, Seen>, account: string, now: number, counted: boolean): void {
    // Existing accounts are remembered only to spare the store; cap them so a flood cannot grow memory.
    if (!counted && seen.size >= this.options.maxPerWindow + 1024) return void seen.delete(account);
    seen.set(account, { expiresAt: now + this.windowMs, counted });
  }

  get addresses(): number {
    return this.byAddress.size;
  }
}
