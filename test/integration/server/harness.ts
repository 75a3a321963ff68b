/** Helpers for the sync server's integration tests: build and run the real bundle, talk HTTP and SSE. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { base32Encode } from '../../../src/common/sessionId';
import { SyncServerProcess } from '../../support/syncServer';

/** The server bundle, started as `node server.js --host 127.0.0.1 --port 0 ...args`. */
export class ServerProcess extends SyncServerProcess {
  /** Starts it with none of this process's TETHER_* variables but `env`, and waits for its "listening" line. */
  static start(args: string[], env: Record<string, string> = {}): Promise<ServerProcess> {
    const cleanEnv: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('TETHER_') && value !== undefined) cleanEnv[key] = value;
    return ServerProcess.launch({ args: ['--host', '127.0.0.1', '--port', '0', '--max-new-accounts-per-ip', '100000', ...args], env: { ...cleanEnv, ...env } });
  }
}

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function newSlotId(): string {
  return base32Encode(randomBytes(16));
}

export class Api {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  request(method: string, path: string, options: { body?: string; headers?: Record<string, string>; auth?: boolean } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    if (options.auth !== false) headers.authorization = `Bearer ${this.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${this.baseUrl}${path}`, { method, headers, body: options.body });
  }

  create(slotId: string, data: string): Promise<Response> {
    return this.request('PUT', `/v1/blobs/${slotId}`, { body: JSON.stringify({ data }), headers: { 'if-none-match': '*' } });
  }

  replace(slotId: string, data: string, version: number): Promise<Response> {
    return this.request('PUT', `/v1/blobs/${slotId}`, { body: JSON.stringify({ data }), headers: { 'if-match': `"${version}"` } });
  }

  /** Writes whatever version is there now: create, or replace the current version. */
  async write(slotId: string, data: string, known: number | undefined): Promise<number> {
    const response = known === undefined ? await this.create(slotId, data) : await this.replace(slotId, data, known);
    const body = (await response.json()) as { version?: number };
    if (!response.ok || typeof body.version !== 'number') throw new Error(`write failed: ${response.status} ${JSON.stringify(body)}`);
    return body.version;
  }
}

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** A minimal EventSource over fetch's body stream that records every event and comment. */
export class SseReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  ended = false;
  private waiters: (() => void)[] = [];

  private constructor(
    readonly status: number,
    private readonly abort: AbortController,
  ) {}

  static async open(baseUrl: string, token: string, options: { slot?: string; lastEventId?: string; leaseSeconds?: number } = {}): Promise<SseReader> {
    const query = options.slot ? `?slot=${options.slot}${options.leaseSeconds ? `&lease=${options.leaseSeconds}` : ''}` : '';
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'text/event-stream' };
    if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
    const controller = new AbortController();
    const response = await fetch(`${baseUrl}/v1/events${query}`, { headers, signal: controller.signal });
    const reader = new SseReader(response.status, controller);
    if (response.status !== 200 || !response.body) {
      await response.body?.cancel();
      reader.ended = true;
      return reader;
    }
    void reader.pump(response.body);
    return reader;
  }

  get lastEventId(): string | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) if (this.events[i].id !== undefined) return this.events[i].id;
    return undefined;
  }

  /** Resolves with the first event at index >= `from` that matches. Fails the test after `ms` rather than hang. */
  async waitFor(predicate: (event: SseEvent) => boolean, from = 0, ms = 15_000): Promise<SseEvent> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.slice(from).find(predicate);
      if (found) return found;
      if (this.ended) throw new Error(`stream ended before the expected event; got ${JSON.stringify(this.events)}`);
      if (Date.now() > deadline) throw new Error(`expected event never arrived; got ${JSON.stringify(this.events)}`);
      await this.changed(deadline - Date.now());
    }
  }

  async waitForComment(text: string, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.comments.includes(text)) {
      if (this.ended || Date.now() > deadline) throw new Error(`no "${text}" comment; got ${JSON.stringify(this.comments)}`);
      await this.changed(deadline - Date.now());
    }
  }

  async waitForEnd(ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('stream did not end');
      await this.changed(deadline - Date.now());
    }
  }

  close(): void {
    this.abort.abort();
  }

  private changed(ms: number): Promise<void> {
    return new Promise((resolveWait) => {
      const timer = setTimeout(resolveWait, Math.max(1, ms));
      this.waiters.push(() => {
        clearTimeout(timer);
        resolveWait();
      });
    });
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
        let boundary: number;
        while ((boundary = buffer.indexOf('\n\n')) >= 0) {
          this.parseBlock(buffer.slice(0, boundary));
          buffer = buffer.slice(boundary + 2);
        }
        this.notify();
      }
    } catch {
      // Aborted or cut: either way the stream has ended.
    }
    this.ended = true;
    this.notify();
  }

  private parseBlock(block: string): void {
    const event: SseEvent = { event: 'message', data: '' };
    const data: string[] = [];
    let isEvent = false;
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        this.comments.push(line.slice(1).trim());
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') {
        data.push(value);
        isEvent = true;
      } else if (field === 'event') {
        event.event = value;
        isEvent = true;
      } else if (field === 'id') {
        event.id = value;
      }
    }
    if (isEvent) {
      event.data = data.join('\n');
      this.events.push(event);
    }
  }
}

/** Client-side encryption as the extension does it: nacl secretbox, nonce || box, base64. */
export class TestCipher {
  readonly key = nacl.randomBytes(nacl.secretbox.keyLength);

  seal(plaintext: string): string {
    const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
    const box = nacl.secretbox(new TextEncoder().encode(plaintext), nonce, this.key);
    return Buffer.concat([nonce, box]).toString('base64');
  }

  open(data: string): string {
    const bytes = Buffer.from(data, 'base64');
    const nonce = bytes.subarray(0, nacl.secretbox.nonceLength);
    const opened = nacl.secretbox.open(bytes.subarray(nacl.secretbox.nonceLength), nonce, this.key);
    if (!opened) throw new Error('blob failed authentication');
    return new TextDecoder().decode(opened);
  }
}

/** A plaintext manifest in the shape of the sync blob (docs/architecture.md, Sync key, envelope and blob), with recognisable host names and session IDs. */
export function testManifest(slotId: string, seq: number, hosts: string[], sessionIds: string[]): string {
  return JSON.stringify({
    format: 1,
    slotId,
    deviceName: 'laptop-under-test',
    seq,
    writtenAt: new Date().toISOString(),
    sessions: sessionIds.map((id, index) => ({
      id,
      host: hosts[index % hosts.length],
      user: 'alice',
      port: 22,
      multiplexer: 'tmux',
      cwd: '/home/alice/project',
      startedAt: new Date().toISOString(),
    })),
    tombstones: [],
  });
}

export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Every regular file under `dir`, recursively. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

/** Which of `needles` occur in `haystack` (as UTF-8 bytes). */
export function findNeedles(haystack: Buffer, needles: string[]): string[] {
  return needles.filter((needle) => haystack.includes(Buffer.from(needle, 'utf8')));
}

export function readAll(paths: string[]): Buffer {
  return Buffer.concat(paths.map((path) => readFileSync(path)));
}
