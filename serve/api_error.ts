/**
 * Errors as the OpenAI API reports them: an HTTP status and a JSON body
 * `{"error": {"message", "type", "param", "code"}}`, which the official clients turn into their
 * typed exceptions.
 *
 * @module
 */

/** An error answered to the client in the OpenAI API's shape. */
export class ApiError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** OpenAI's error type, e.g. `invalid_request_error`. */
  readonly type: string;
  /** The request field at fault, if one is. */
  readonly param: string | null;
  /** A machine-readable code, e.g. `model_not_found`. */
  readonly code: string | null;
  /** Headers the response carries besides its type, e.g. `Retry-After`. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: number,
    message: string,
    details: {
      readonly type?: string;
      readonly param?: string;
      readonly code?: string;
      readonly headers?: Readonly<Record<string, string>>;
    } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = details.type ?? (status >= 500 ? "server_error" : "invalid_request_error");
    this.param = details.param ?? null;
    this.code = details.code ?? null;
    this.headers = details.headers ?? {};
  }

  /** The JSON body: `{"error": {...}}`. */
  toJSON(): {
    error: { message: string; type: string; param: string | null; code: string | null };
  } {
    return {
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    };
  }

  /** The error as an HTTP response. */
  toResponse(): Response {
    return Response.json(this, { status: this.status, headers: this.headers });
  }
}

/** A 400 for a request field that is missing or wrong. */
export function invalidField(param: string, message: string, code?: string): ApiError {
  return new ApiError(400, message, { param, ...(code === undefined ? {} : { code }) });
}
