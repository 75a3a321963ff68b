/** Every client-visible failure, as the `error` code in the JSON body (docs/protocol.md). */
export type HttpErrorReason =
  | 'bad_request'
  | 'unauthorized'
  | 'not_found'
  | 'method_not_allowed'
  | 'too_many_slots'
  | 'account_full'
  | 'precondition_failed'
  | 'precondition_required'
  | 'blob_too_large'
  | 'body_too_large'
  | 'rate_limited'
  | 'too_many_streams'
  | 'too_many_accounts'
  | 'shutting_down'
  | 'internal';

const STATUS: Record<HttpErrorReason, number> = {
  bad_request: 400,
  unauthorized: 401,
  not_found: 404,
  method_not_allowed: 405,
  too_many_slots: 409,
  account_full: 409,
  precondition_failed: 412,
  precondition_required: 428,
  blob_too_large: 413,
  body_too_large: 413,
  rate_limited: 429,
  too_many_streams: 429,
  too_many_accounts: 429,
  shutting_down: 503,
  internal: 500,
};

export interface HttpErrorOptions {
  /** Extra response headers, e.g. Retry-After or ETag. */
  headers?: Record<string, string>;
  /** Extra fields merged into the JSON body, e.g. the current version on 412. */
  fields?: Record<string, string | number | null>;
}

/** A request that ends in a 4xx/5xx with a JSON body `{"error","message",...fields}`. */
export class HttpError extends Error {
  readonly status: number;
  constructor(
    readonly reason: HttpErrorReason,
    message: string,
    readonly options: HttpErrorOptions = {},
  ) {
    super(message);
    this.name = 'HttpError';
    this.status = STATUS[reason];
  }

  body(): string {
    return JSON.stringify({ error: this.reason, message: this.message, ...(this.options.fields ?? {}) });
  }

  static is(error: unknown): error is HttpError {
    return error instanceof HttpError;
  }
}
