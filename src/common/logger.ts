/**
 * The one logging surface of the extension's core (the server, a separate process, writes JSON lines
 * through its own). vscode's LogOutputChannel satisfies it as is. Never given a key or a token.
 */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string | Error): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
