/**
 * One holder at a time per key; waiters are served in arrival order. `acquire` resolves with a
 * release function that is safe to call more than once, so a holder can hand the key on early (for
 * example once a tmux control client is identified) and still release in a `finally`.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async acquire(key: string): Promise<() => void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => held);
    this.tails.set(key, tail);
    await previous;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
      // The last holder leaves no entry behind.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }

  /** Runs `work` while holding `key`; `work` may release early through its argument. */
  async run<T>(key: string, work: (release: () => void) => Promise<T>): Promise<T> {
    const release = await this.acquire(key);
    try {
      return await work(release);
    } finally {
      release();
    }
  }

  /** Keys with a holder or waiters (for tests and diagnostics). */
  get busyKeys(): number {
    return this.tails.size;
  }
}
