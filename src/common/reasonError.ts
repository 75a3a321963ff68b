/**
 * The shape of Tether's errors: a machine-readable `reason`, a message for people, and
 * `SomeError.is(value)`, which narrows to the class it is called on. Subclasses set `name` as a
 * literal, because a minified bundle renames classes.
 */
export abstract class ReasonError<Reason extends string> extends Error {
  constructor(
    readonly reason: Reason,
    message: string,
  ) {
    super(message);
  }

  static is<T extends Error>(this: abstract new (...args: never[]) => T, error: unknown): error is T {
    return error instanceof this;
  }
}
