import { randomBytes } from 'node:crypto';
import type { ClientChannel } from 'ssh2';
import { openScriptChannel, RemoteCommandError } from './remoteExec';

/**
 * One long-lived `sh` on an exec channel that runs our scripts one after another (issue 15). An exec
 * per operation costs a channel open and a login-shell start, several round trips and forks; here a
 * request is one write and one answer. Each script runs in a subshell, so its `exit`, traps and `cd`
 * end with it, and with its stdin either /dev/null or a quoted here-document, so nothing it runs can
 * eat the next request. Only our own scripts and our own base64 are ever written to the shell.
 */

export interface ShellAnswer {
  /** The lines the script printed, without the newline. */
  readonly lines: string[];
  /** True when the output passed the request's byte cap: the shell was ended and these are the first lines. */
  readonly cut: boolean;
}

/** Splits a channel's output into lines, each capped; an over-long line is skipped to its end. */
export function lineReader(onLine: (line: string) => void, maxLine: number): (chunk: Buffer) => void {
  let parts: Buffer[] = [];
  let size = 0;
  let skipping = false;
  return (chunk) => {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline < 0 ? chunk.length : newline;
      if (!skipping) {
        size += end - start;
        if (size > maxLine) {
          skipping = true;
          parts = [];
        } else parts.push(chunk.subarray(start, end));
      }
      if (newline < 0) return;
      if (!skipping) onLine(Buffer.concat(parts).toString('utf8'));
      parts = [];
      size = 0;
      skipping = false;
      start = newline + 1;
    }
  };
}

interface Pending {
  readonly done: string;
  readonly maxBytes: number;
  readonly lines: string[];
  size: number;
  settle(error: Error | undefined, answer?: ShellAnswer): void;
}

/** Lines longer than this in a shell answer are dropped (a blob line is far below it). */
const MAX_SHELL_LINE = 64 * 1024 * 1024;

export class RemoteShell {
  private channel: ClientChannel | undefined;
  private opening: Promise<ClientChannel> | undefined;
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private ended = false;

  /**
   * `client` is the connection's ssh2 client; `isOpen` says whether that connection still is.
   * `onEnd` hears once when the shell is gone (closed, failed, cut or timed out).
   */
  constructor(
    private readonly client: Parameters<typeof openScriptChannel>[0],
    private readonly options: { readonly timeoutMs: number; readonly onEnd?: (why: string) => void },
  ) {}

  /** False once the shell has ended; a new RemoteShell is needed then. */
  get alive(): boolean {
    return !this.ended;
  }

  /**
   * Runs `script` in a subshell, with `input` (base64 or other text we made; never a peer's) on its
   * stdin. Requests run one at a time, in order. Rejects with RemoteCommandError when the shell
   * could not start, ended, or did not answer within the timeout (the shell is ended then).
   */
  run(script: string, input?: string, maxBytes = 1024 * 1024): Promise<ShellAnswer> {
    const next = this.queue.then(() => this.runNow(script, input, maxBytes));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Ends the shell (closing its channel); queued and running requests fail. */
  close(why = 'closed'): void {
    if (this.ended) return;
    this.ended = true;
    this.channel?.close();
    this.channel = undefined;
    this.pending?.settle(new RemoteCommandError('channel', `the remote shell ended: ${why}`));
    this.pending = undefined;
    this.options.onEnd?.(why);
  }

  private async runNow(script: string, input: string | undefined, maxBytes: number): Promise<ShellAnswer> {
    if (this.ended) throw new RemoteCommandError('channel', 'the remote shell ended');
    const channel = await this.start();
    const nonce = randomBytes(9).toString('hex');
    const done = `__tether_done_${nonce}__`;
    const eof = `__tether_in_${nonce}__`;
    if (input !== undefined && (input.includes(eof) || input.includes('\n'))) throw new TypeError('shell input must be one line of our own text');
    const request =
      input === undefined
        ? `(\n${script}\n) </dev/null\necho ${done}\n`
        : `(\n${script}\n) <<'${eof}'\n${input}\n${eof}\necho ${done}\n`;
    return new Promise<ShellAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        const why = `no answer within ${this.options.timeoutMs} ms`;
        if (this.pending === pending) this.pending = undefined;
        pending.settle(new RemoteCommandError('timeout', `the remote shell gave ${why}`));
        this.close(why);
      }, this.options.timeoutMs);
      const pending: Pending = {
        done,
        maxBytes,
        lines: [],
        size: 0,
        settle: (error, answer) => {
          clearTimeout(timer);
          if (error) reject(error);
          else resolve(answer!);
        },
      };
      this.pending = pending;
      channel.write(request);
    });
  }

  private start(): Promise<ClientChannel> {
    if (this.channel) return Promise.resolve(this.channel);
    if (!this.opening) {
      this.opening = this.open().finally(() => {
        this.opening = undefined;
      });
    }
    return this.opening;
  }

  private async open(): Promise<ClientChannel> {
    const marker = `__tether_shell_${randomBytes(8).toString('hex')}__`;
    // `exec sh` reads requests from the channel; the marker cuts off banners and rc-file noise.
    const channel = await openScriptChannel(this.client, `echo ${marker}\nexec sh`);
    if (this.ended) {
      channel.close();
      throw new RemoteCommandError('channel', 'the remote shell ended');
    }
    let started = false;
    const read = lineReader((line) => {
      if (!started) {
        started = line === marker;
        return;
      }
      const pending = this.pending;
      if (!pending) return; // nothing asked: ignore (never happens with our scripts)
      if (line === pending.done) {
        this.pending = undefined;
        pending.settle(undefined, { lines: pending.lines, cut: false });
        return;
      }
      pending.lines.push(line);
    }, MAX_SHELL_LINE);
    channel.on('data', (chunk: Buffer) => {
      const pending = this.pending;
      if (pending && started) {
        pending.size += chunk.length;
        if (pending.size > pending.maxBytes) {
          this.pending = undefined;
          pending.settle(undefined, { lines: pending.lines, cut: true });
          this.close('an answer over its size cap');
          return;
        }
      }
      read(chunk);
    });
    channel.stderr.resume();
    channel.on('close', () => this.close('the channel closed'));
    channel.on('error', () => this.close('the channel failed'));
    this.channel = channel;
    return channel;
  }
}
