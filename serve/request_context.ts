/**
 * What a route handler is given: the server's shared state, the request's log entry, and one
 * signal that aborts when the client leaves, the server shuts down or the request runs out of
 * time, with the error each of those answers.
 *
 * @module
 */

import { ApiError } from "./api_error.ts";
import type { ModelQueue } from "./model_queue.ts";
import type { RequestLog } from "./request_log.ts";
import type { ServedModel } from "./served_model.ts";
import type { BodyLimits } from "./request_body.ts";

/** State every request of one server shares. */
export interface ServerState {
  readonly served: ServedModel;
  readonly queue: ModelQueue;
  readonly body: BodyLimits;
  /** Longest a request may take, waiting for the model included. */
  readonly requestTimeoutSeconds: number;
  /** Aborts when the server begins to shut down. */
  readonly closing: AbortSignal;
}

/** One request's view of the server. */
export interface RequestContext {
  readonly server: ServerState;
  readonly log: RequestLog;
  /** When the request arrived (`performance.now()`). */
  readonly startedAt: number;
  /** Aborts when the client leaves, the server shuts down or the request times out. */
  readonly signal: AbortSignal;
  /** Aborts when the client leaves. */
  readonly clientGone: AbortSignal;
  /** Ends the request's work (its response may still be on its way): the signal stops. */
  release(): void;
}

/** A route's handler. */
export type Handler = (request: Request, context: RequestContext) => Promise<Response>;

/**
 * A request's context, its signal combining the client's, the server's and a timeout. The
 * client's signal is followed only until {@link RequestContext.release}: Deno aborts it also once
 * a response was sent. `released` runs on release, once the status is final.
 */
export function requestContext(
  request: Request,
  server: ServerState,
  log: RequestLog,
  startedAt: number,
  released: () => void,
): RequestContext {
  const client = new AbortController();
  const leave = () => client.abort();
  request.signal.addEventListener("abort", leave, { once: true });
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), server.requestTimeoutSeconds * 1000);
  return {
    server,
    log,
    startedAt,
    signal: AbortSignal.any([client.signal, server.closing, timeout.signal]),
    clientGone: client.signal,
    release: () => {
      clearTimeout(timer);
      request.signal.removeEventListener("abort", leave);
      if (client.signal.aborted) log.status = CLIENT_CLOSED;
      released();
    },
  };
}

/** The status a client that left is logged with (nginx's "client closed request"). */
export const CLIENT_CLOSED = 499;

/** Why a request's signal aborted, as the error answered (or, for a client gone, logged). */
export function cancellation(context: RequestContext): ApiError {
  if (context.server.closing.aborted) {
    return new ApiError(503, "The server is shutting down", { code: "server_shutting_down" });
  }
  if (context.clientGone.aborted) {
    return new ApiError(CLIENT_CLOSED, "The client closed the request");
  }
  return new ApiError(
    503,
    `The request did not complete within ${context.server.requestTimeoutSeconds} s`,
    { code: "timeout" },
  );
}
