/**
 * The HTTP server: `Deno.serve` on the given host and port, each request routed (see
 * {@link ROUTES}), checked for the API key, answered with OpenAI-shaped errors on failure, and
 * logged in one line when its response ends. Shutting down stops accepting connections, answers
 * waiting requests with 503, stops the running generation at its next token and waits for every
 * response to end.
 *
 * @module
 */

import type { LoadedModel } from "../runtime/model.ts";
import type { ChatTemplate } from "../tokenizer/chat/chat_template.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { ApiError } from "./api_error.ts";
import { checkApiKey } from "./auth.ts";
import { ModelQueue } from "./model_queue.ts";
import {
  CLIENT_CLOSED,
  type RequestContext,
  requestContext,
  type ServerState,
} from "./request_context.ts";
import { RequestLog } from "./request_log.ts";
import { ROUTES } from "./routes.ts";
import { ServedModel } from "./served_model.ts";

/** The defaults of {@link ServerOptions}, used by `llamane serve` too. */
export const SERVER_DEFAULTS = {
  hostname: "127.0.0.1",
  port: 8080,
  maxQueue: 8,
  contextReuse: true,
  requestTimeoutSeconds: 600,
  bodyTimeoutSeconds: 30,
  maxBodyBytes: 1 << 20,
} as const;

/** How to serve. */
export interface ServerOptions {
  /** The address to bind. @default SERVER_DEFAULTS.hostname (loopback only) */
  readonly hostname?: string;
  /** The port; 0 picks a free one. @default SERVER_DEFAULTS.port */
  readonly port?: number;
  /** With a key, every route but `/health` needs `Authorization: Bearer <key>`. */
  readonly apiKey?: string;
  /** Most requests waiting for the model; more get 429. @default SERVER_DEFAULTS.maxQueue */
  readonly maxQueue?: number;
  /**
   * Keep the cache between requests, so a prompt extending the previous one prefills only the
   * rest. @default SERVER_DEFAULTS.contextReuse
   */
  readonly contextReuse?: boolean;
  /** Longest a request may take, waiting included. @default SERVER_DEFAULTS.requestTimeoutSeconds */
  readonly requestTimeoutSeconds?: number;
  /** Longest the body may take to arrive. @default SERVER_DEFAULTS.bodyTimeoutSeconds */
  readonly bodyTimeoutSeconds?: number;
  /** Largest body accepted; larger ones get 413. @default SERVER_DEFAULTS.maxBodyBytes */
  readonly maxBodyBytes?: number;
  /** Where log lines go. @default console.error */
  readonly log?: (line: string) => void;
}

/** What is served: a loaded model, its tokenizer and chat template, and its name. */
export interface ServerModel {
  /** The id clients name the model by. */
  readonly name: string;
  /** The loaded bundle; the server does not release it. */
  readonly model: LoadedModel;
  /** The bundle's tokenizer. */
  readonly tokenizer: Tokenizer;
  /** The chat template; without one, chat completions are refused. */
  readonly template: ChatTemplate | undefined;
}

/** A server that is listening. */
export interface RunningServer {
  /** `http://host:port`, the base of every route. */
  readonly url: string;
  /** The address it listens on. */
  readonly hostname: string;
  /** The port it listens on (the one picked, when asked for 0). */
  readonly port: number;
  /** Stops the server gracefully (see the module); resolves once every response ended. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
}

function internalError(error: unknown, log: (line: string) => void): ApiError {
  log(`internal error: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  return new ApiError(500, "The server failed to answer the request");
}

/**
 * Starts serving `what`; the server listens when this returns.
 *
 * @example Serve a loaded bundle on a free port of loopback, then stop
 * ```ts ignore
 * import { loadModel } from "@llamane/llamane";
 * import { readBundledTokenizer, readManifest } from "@llamane/llamane/bundle";
 * import { startServer } from "@llamane/llamane/serve";
 * using model = await loadModel("out/kjv.llamane");
 * const manifest = await readManifest("out/kjv.llamane");
 * const tokenizer = readBundledTokenizer("out/kjv.llamane", manifest.tokenizer!);
 * const server = startServer({ name: "kjv", model, tokenizer, template: undefined }, { port: 0 });
 * console.log(`${server.url}/v1/completions`);
 * await server.shutdown();
 * ```
 */
export function startServer(what: ServerModel, options: ServerOptions = {}): RunningServer {
  const write = options.log ?? ((line: string) => console.error(line));
  const closing = new AbortController();
  const state: ServerState = {
    served: new ServedModel({
      ...what,
      contextReuse: options.contextReuse ?? SERVER_DEFAULTS.contextReuse,
    }),
    queue: new ModelQueue(options.maxQueue ?? SERVER_DEFAULTS.maxQueue),
    body: {
      maxBytes: options.maxBodyBytes ?? SERVER_DEFAULTS.maxBodyBytes,
      timeoutSeconds: options.bodyTimeoutSeconds ?? SERVER_DEFAULTS.bodyTimeoutSeconds,
    },
    requestTimeoutSeconds: options.requestTimeoutSeconds ?? SERVER_DEFAULTS.requestTimeoutSeconds,
    closing: closing.signal,
  };

  const handle = async (request: Request, info: Deno.ServeHandlerInfo): Promise<Response> => {
    const startedAt = performance.now();
    const path = new URL(request.url).pathname;
    const route = ROUTES[path];
    const log = new RequestLog(
      request.method,
      route === undefined ? path.slice(0, 64) : path,
      startedAt,
      write,
    );
    // The line is written once the response was delivered (or the client left) and the
    // request's work is over: a stream's generation may end after its client went away.
    let released = () => {};
    const workDone = new Promise<void>((resolve) => released = resolve);
    const delivered = info.completed.catch(() => {
      log.status = CLIENT_CLOSED;
    });
    Promise.all([delivered, workDone]).then(() => log.end());
    let response: Response;
    let context: RequestContext | undefined;
    try {
      if (route === undefined) {
        throw new ApiError(404, `Unknown route: ${request.method} ${path.slice(0, 64)}`, {
          code: "unknown_route",
        });
      }
      const entry = route[request.method];
      if (entry === undefined) {
        throw new ApiError(405, `${path} does not answer ${request.method}`, {
          code: "method_not_allowed",
          headers: { allow: Object.keys(route).join(", ") },
        });
      }
      if (options.apiKey !== undefined && !entry.open) checkApiKey(request, options.apiKey);
      context = requestContext(request, state, log, startedAt, released);
      response = await entry.handler(request, context);
    } catch (error) {
      response = (error instanceof ApiError ? error : internalError(error, write)).toResponse();
    }
    // A stream keeps its context until it ends, and sets its own status as it goes.
    if (!log.streaming) {
      log.status = response.status;
      if (context === undefined) released();
      else context.release();
    }
    return response;
  };

  const server = Deno.serve({
    hostname: options.hostname ?? SERVER_DEFAULTS.hostname,
    port: options.port ?? SERVER_DEFAULTS.port,
    onListen: () => {},
  }, handle);
  let stopping: Promise<void> | undefined;
  const { hostname, port } = server.addr;
  return {
    url: `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`,
    hostname,
    port,
    shutdown: () => {
      stopping ??= (async () => {
        closing.abort();
        await server.shutdown();
      })();
      return stopping;
    },
    finished: server.finished,
  };
}
