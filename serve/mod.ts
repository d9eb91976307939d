/**
 * The OpenAI-compatible server's parts, for tools that serve a model they loaded themselves:
 * {@link startServer} serves a loaded model with its tokenizer and chat template, with the
 * options and defaults `llamane serve` uses. Serving a bundle from its directory goes through the
 * top-level entry point's `serveBundle`.
 *
 * @module
 */

export {
  type RunningServer,
  SERVER_DEFAULTS,
  type ServerModel,
  type ServerOptions,
  startServer,
} from "./server.ts";
