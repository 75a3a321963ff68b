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
 * The byte path between a tab and its session (DESIGN §2). The attach driver lets the multiplexer
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

/** Drives a session through a pty channel running `tmux attach`, `screen -x` or a plain shell. */
export class AttachDriver implements SessionDriver {
  private open = true;
  private exitCode: number | null = null;
  private readonly closeListeners: ((info: DriverClose) => void)[] = [];

  /** `initial`: bytes already read from a paused channel (after the attach status line); they are
   * delivered first, then the channel resumes. */
  constructor(
    private readonly channel: ClientChannel,
    private initial?: Buffer,
  ) {
    channel.on('exit', (code: number | null) => {
      this.exitCode = typeof code === 'number' ? code : null;
    });
    channel.on('close', () => {
      if (!this.open) return;
      this.open = false;
      for (const listener of this.closeListeners) listener({ exitCode: this.exitCode });
    });
    channel.on('error', () => {
      /* 'close' follows and carries the outcome */
    });
  }

  get isOpen(): boolean {
    return this.open;
  }

  write(data: string | Buffer): void {
    if (this.open) this.channel.write(data);
  }

  resize(size: TerminalSize): void {
    if (this.open) this.channel.setWindow(size.rows, size.cols, 0, 0);
  }

  pause(): void {
    this.channel.pause();
  }

  resume(): void {
    this.channel.resume();
  }

  detach(): void {
    if (!this.open) return;
    this.channel.close();
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
    this.closeListeners.push(listener);
  }
}
