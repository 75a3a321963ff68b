import * as vscode from 'vscode';
import type { PersistentSession } from '../session/persistentSession';

/**
 * The Pseudoterminal a Tether tab shows: a thin adapter from VS Code's terminal to a
 * PersistentSession. It owns no logic beyond forwarding.
 */
export class TetherPty implements vscode.Pseudoterminal {
  private readonly writeEmitter = new vscode.EventEmitter<string>();
  private readonly closeEmitter = new vscode.EventEmitter<number | void>();
  private readonly nameEmitter = new vscode.EventEmitter<string>();
  readonly onDidWrite = this.writeEmitter.event;
  readonly onDidClose = this.closeEmitter.event;
  readonly onDidChangeName = this.nameEmitter.event;
  private started = false;
  private exitCode: number | undefined;

  constructor(
    readonly session: PersistentSession,
    private readonly onClosedByEditor: () => void,
  ) {
    session.on('data', (text) => this.writeEmitter.fire(text));
    session.on('exit', (code) => {
      // A shell that exited cleanly closes its tab. Otherwise the tab stays, so the reason it
      // printed can be read, until a key is pressed (as VS Code does for its own terminals).
      if (code === 0) return this.closeEmitter.fire(code);
      this.exitCode = code;
      this.writeEmitter.fire('\r\n\x1b[2m[tether] Press any key to close this tab.\x1b[0m');
    });
  }

  open(initialDimensions: vscode.TerminalDimensions | undefined): void {
    if (this.started) return;
    this.started = true;
    void this.session.start(initialDimensions ? { cols: initialDimensions.columns, rows: initialDimensions.rows } : { cols: 80, rows: 24 });
  }

  handleInput(data: string): void {
    if (this.exitCode !== undefined) return this.closeEmitter.fire(this.exitCode);
    this.session.write(data);
  }

  setDimensions(dimensions: vscode.TerminalDimensions): void {
    this.session.resize({ cols: dimensions.columns, rows: dimensions.rows });
  }

  /** VS Code closed the tab: the user, a shutdown or the extension. The manager decides what it means. */
  close(): void {
    this.onClosedByEditor();
  }

  rename(name: string): void {
    this.nameEmitter.fire(name);
  }

  dispose(): void {
    this.writeEmitter.dispose();
    this.closeEmitter.dispose();
    this.nameEmitter.dispose();
  }
}
