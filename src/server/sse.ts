/** Server-Sent Events framing (WHATWG HTML, "server-sent events"). */

export interface SseFrame {
  id?: number;
  event?: string;
  data: string;
}

export class SseFramingError extends Error {
  constructor(readonly reason: 'newline_in_field') {
    super('an SSE event name must not contain a line break');
    this.name = 'SseFramingError';
  }
  static is(error: unknown): error is SseFramingError {
    return error instanceof SseFramingError;
  }
}

/** One event; every line of `data` becomes its own `data:` line so a payload cannot end the event early. */
export function formatEvent(frame: SseFrame): string {
  let out = '';
  if (frame.id !== undefined) out += `id: ${frame.id}\n`;
  if (frame.event !== undefined) {
    if (/[\r\n]/.test(frame.event)) throw new SseFramingError('newline_in_field');
    out += `event: ${frame.event}\n`;
  }
  for (const line of frame.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return out + '\n';
}

/** A comment line, which clients ignore; used for heartbeats so proxies keep the stream open. */
export function formatComment(text: string): string {
  return `: ${text.replace(/[\r\n]+/g, ' ')}\n\n`;
}

export function formatRetry(ms: number): string {
  return `retry: ${Math.max(0, Math.floor(ms))}\n\n`;
}

/**
 * The client's Last-Event-ID: `none` when absent or empty, `invalid` when it is not an id this server
 * could have issued (the caller answers with `reset`), else the number.
 */
export function parseLastEventId(header: string | undefined): { kind: 'none' } | { kind: 'invalid' } | { kind: 'id'; id: number } {
  if (header === undefined || header.trim() === '') return { kind: 'none' };
  const text = header.trim();
  if (!/^\d{1,16}$/.test(text)) return { kind: 'invalid' };
  const id = Number(text);
  return Number.isSafeInteger(id) ? { kind: 'id', id } : { kind: 'invalid' };
}
