import type { ClientChannel } from 'ssh2';

export interface TerminalSize {
  cols: number;
  rows: number;
}

export interface DriverClose {
  /** The remote command's exit status, when the channel reported one. */
  exitCode: number | null;
}

/**
 * The byte path between a tab and its session (docs/architecture.md, Sessions). The attach driver lets the multiplexer
 * draw in a pty; a control-mode driver can sit behind the same interface.
 */
export interface SessionDriver {
  write(data: string | Buffer): void;
  resize(size: TerminalSize): void;
  pause(): void;
  resume(): void;
  /** Closes our end; the session on the host stays. */
  detach(): void;
  readonly isOpen: boolean;
  onOutput(listener: (chunk: Buffer) => void): void;
  onClose(listener: (info: DriverClose) => void): void;
}

/**
 * What both drivers keep about their channel: its exit status, one close, and the close listeners.
 * A listener added after the close is still called (on a microtask), so nobody waits forever.
 */
export class ChannelLifecycle {
  private open = true;
  private exitCode: number | null = null;
  private readonly closeListeners: ((info: DriverClose) => void)[] = [];

  /** `beforeListeners` runs once at the close, after isOpen turned false, before any listener. */
  constructor(channel: ClientChannel, beforeListeners?: () => void) {
    channel.on('exit', (code: number | null) => {
      this.exitCode = typeof code === 'number' ? code : null;
    });
    channel.on('error', () => {
      /* 'close' follows and carries the outcome */
    });
    channel.on('close', () => {
      if (!this.open) return;
      this.open = false;
      beforeListeners?.();
      for (const listener of this.closeListeners.splice(0)) listener({ exitCode: this.exitCode });
    });
  }

  get isOpen(): boolean {
    return this.open;
  }

  onClose(listener: (info: DriverClose) => void): void {
    if (this.open) this.closeListeners.push(listener);
    else queueMicrotask(() => listener({ exitCode: this.exitCode }));
  }
}

/** Drives a session through a pty channel running `tmux attach`, `screen -x` or a plain shell. */
export class AttachDriver implements SessionDriver {
  private readonly lifecycle: ChannelLifecycle;

  /** `initial`: bytes already read from a paused channel (after the attach status line); they are
   * delivered first, then the channel resumes. */
  constructor(
    private readonly channel: ClientChannel,
    private initial?: Buffer,
  ) {
    this.lifecycle = new ChannelLifecycle(channel);
  }

  get isOpen(): boolean {
    return this.lifecycle.isOpen;
  }

  write(data: string | Buffer): void {
    if (this.isOpen) this.channel.write(data);
  }

  resize(size: TerminalSize): void {
    if (this.isOpen) this.channel.setWindow(size.rows, size.cols, 0, 0);
  }

  pause(): void {
    this.channel.pause();
  }

  resume(): void {
    this.channel.resume();
  }

  detach(): void {
    if (this.isOpen) this.channel.close();
  }

  onOutput(listener: (chunk: Buffer) => void): void {
    const initial = this.initial;
    this.initial = undefined;
    if (initial && initial.length > 0) listener(initial);
    this.channel.on('data', listener);
    this.channel.stderr.on('data', listener);
    this.channel.resume();
  }

  onClose(listener: (info: DriverClose) => void): void {
    this.lifecycle.onClose(listener);
  }
}
