/** A bounded, in-memory log of one account's change events, for Last-Event-ID resume. */

export interface LoggedEvent {
  id: number;
  event: 'blob' | 'delete';
  /** The JSON payload exactly as sent on the stream. */
  data: string;
}

export type ResumeResult = { kind: 'events'; events: LoggedEvent[] } | { kind: 'reset' };

export class EventLog {
  private readonly events: LoggedEvent[] = [];
  private size = 0;

  /**
   * @param floor every event of this account with an id above `floor` is (or will be) in this log;
   *   anything at or below it may have been missed, so a client resuming from below it gets `reset`.
   * @param capacity most events kept.
   * @param maxBytes most payload bytes kept (blobs are inline, so a count alone does not bound memory);
   *   the newest event is always kept.
   */
  constructor(
    private floor: number,
    readonly capacity: number,
    readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {
    if (!(capacity >= 1)) throw new RangeError('event log capacity must be at least 1');
  }

  /** Payload bytes held (UTF-16 length of the JSON, close enough for a budget). */
  get bytes(): number {
    return this.size;
  }

  get latestId(): number {
    return this.events.length > 0 ? this.events[this.events.length - 1].id : this.floor;
  }

  get oldestResumableId(): number {
    return this.floor;
  }

  get length(): number {
    return this.events.length;
  }

  /** Appends an event; returns false (and drops it) if its id does not rise, e.g. a duplicate. */
  append(event: LoggedEvent): boolean {
    if (event.id <= this.latestId) return false;
    this.events.push(event);
    this.size += event.data.length;
    while (this.events.length > this.capacity || (this.size > this.maxBytes && this.events.length > 1)) {
      const dropped = this.events.shift();
      if (!dropped) break;
      this.floor = dropped.id;
      this.size -= dropped.data.length;
    }
    return true;
  }

  /** What a client that last saw `lastId` has missed, or `reset` when this log cannot say. */
  since(lastId: number): ResumeResult {
    if (lastId < this.floor || lastId > this.latestId) return { kind: 'reset' };
    return { kind: 'events', events: this.events.filter((event) => event.id > lastId) };
  }

  /** Forgets everything up to now, e.g. after the store's change feed had a gap. */
  truncate(newFloor: number): void {
    this.events.length = 0;
    this.size = 0;
    this.floor = Math.max(this.floor, newFloor);
  }
}
