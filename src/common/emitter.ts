/** A disposable subscription; structurally compatible with vscode.Disposable. */
export interface Disposable {
  dispose(): void;
}

/** The listener-registration half of an Emitter; structurally compatible with vscode.Event. */
export type Event<T> = (listener: (value: T) => void) => Disposable;

/**
 * A tiny typed event emitter with VS Code's shape, so sync logic needs no vscode import.
 * A throwing listener is isolated from the others and from the code that fired the event.
 */
export class Emitter<T> {
  private readonly listeners = new Set<(value: T) => void>();

  constructor(private readonly onListenerError: (error: unknown) => void = () => undefined) {}

  readonly event: Event<T> = (listener) => {
    // Wrap so that subscribing the same function twice gives two independent subscriptions.
    const entry = (value: T): void => listener(value);
    this.listeners.add(entry);
    return { dispose: () => void this.listeners.delete(entry) };
  };

  fire(value: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(value);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }

  dispose(): void {
    this.listeners.clear();
  }
}
