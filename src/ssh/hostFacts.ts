/**
 * What a connection pool has learned about each host (what it runs, for instance), kept across
 * that host's connections so that a reconnect does not ask again. Owned by the pool, so each pool
 * (one per window; one per simulated device in the tests) learns on its own. The ssh layer stores
 * facts without knowing what they mean: the module that asks names the fact with a HostFact.
 */
import type { ResolvedHost } from './sshConfig';

/** The name, and the type, of one kind of fact. */
export class HostFact<T> {
  /** Only carries T for the compiler. */
  declare private readonly valueType: T;
  constructor(readonly name: string) {}
}

export class HostFacts {
  private readonly known = new Map<string, Promise<unknown>>();

  constructor(private readonly keyOf: (host: ResolvedHost) => string) {}

  /** The fact, asked once per host: callers that come while it is being asked share that answer;
   * a failed answer is not kept, so the next caller asks again. */
  learn<T>(host: ResolvedHost, fact: HostFact<T>, ask: () => Promise<T>): Promise<T> {
    const key = this.entryKey(host, fact);
    const cached = this.known.get(key) as Promise<T> | undefined;
    if (cached) return cached;
    const asking = ask();
    this.known.set(key, asking);
    asking.catch(() => {
      if (this.known.get(key) === asking) this.known.delete(key);
    });
    return asking;
  }

  /** The fact if it is known or being asked; never asks. */
  peek<T>(host: ResolvedHost, fact: HostFact<T>): Promise<T> | undefined {
    return this.known.get(this.entryKey(host, fact)) as Promise<T> | undefined;
  }

  /** Drops what is known: the next learn asks again (the host no longer answers as it did). */
  forget(host: ResolvedHost, fact: HostFact<unknown>): void {
    this.known.delete(this.entryKey(host, fact));
  }

  private entryKey(host: ResolvedHost, fact: HostFact<unknown>): string {
    return `${fact.name}\u0000${this.keyOf(host)}`;
  }
}
