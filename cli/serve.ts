/**
 * `llamane serve`: an OpenAI-compatible HTTP server on a bundle, until SIGINT or SIGTERM.
 *
 * @module
 */

import {
  type FlagTable,
  parseChoice,
  parseFlags,
  parseInteger,
  usage,
  UsageError,
} from "./args.ts";
import type { Command } from "./command.ts";
import { backendSelection, runFlags } from "./run.ts";
import { netNeed, readNeed, requirePermissions } from "../permissions.ts";
import { SERVER_DEFAULTS } from "../serve/server.ts";
import { serveBundle } from "../serve/serve_bundle.ts";

const flags = {
  model: runFlags.model,
  host: {
    type: "string",
    value: "HOST",
    help: "address to listen on; 0.0.0.0 opens the server to the network",
    default: SERVER_DEFAULTS.hostname,
  },
  port: {
    type: "string",
    value: "N",
    help: "port to listen on",
    default: `${SERVER_DEFAULTS.port}`,
  },
  api_key: {
    type: "string",
    value: "KEY",
    help: "require 'Authorization: Bearer KEY' on every route but /health",
    defaultText: "none",
  },
  max_queue: {
    type: "string",
    value: "N",
    help: "requests that may wait for the model behind the running one; more get 429",
    default: `${SERVER_DEFAULTS.maxQueue}`,
  },
  context_reuse: {
    type: "string",
    value: "on|off",
    help: "on: a prompt that extends the previous request's prefills only what it adds; off: " +
      "every prompt is prefilled whole, so no request's timing or cached_tokens tells anything " +
      "of another's",
    default: "on",
  },
  timeout: {
    type: "string",
    value: "S",
    help: "longest a request may take, waiting for the model included; then 503",
    default: `${SERVER_DEFAULTS.requestTimeoutSeconds}`,
  },
  backend: runFlags.backend,
  compute_units: runFlags.compute_units,
} as const satisfies FlagTable;

/** `llamane serve -m BUNDLE [--host H] [--port N] [--api_key KEY] [--max_queue N] ...` */
export const serveCommand: Command = {
  summary: "serve a bundle over an OpenAI-compatible HTTP API",
  usage: usage({
    command: "serve",
    synopsis: ["-m BUNDLE [--host 127.0.0.1] [--port 8080] [--api_key KEY] [flags]"],
    description: "Answers POST /v1/chat/completions and /v1/completions (streamed as server-sent " +
      "events or whole), GET /v1/models, GET /health and a chat page at GET /, one generation " +
      "at a time, and logs a line per request to stderr. SIGINT or SIGTERM stops it: waiting requests get 503, the " +
      "running one stops at its next token.",
    flags,
    notes: `Limits: a body of at most ${SERVER_DEFAULTS.maxBodyBytes} bytes (413 beyond), ` +
      `received within ${SERVER_DEFAULTS.bodyTimeoutSeconds} s (408 after); a prompt and its ` +
      "max_tokens within the bundle's cache length (400 beyond). Deno's HTTP server sets no time " +
      "limit on receiving a request's headers.",
  }),

  async main(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.model === undefined) throw new UsageError("Missing --model");
    const port = parseInteger("port", values.port, 0, 65535);
    const maxQueue = parseInteger("max_queue", values.max_queue, 0);
    const timeout = parseInteger("timeout", values.timeout, 1);
    const contextReuse = parseChoice("context_reuse", values.context_reuse, ["on", "off"]) === "on";
    const backend = backendSelection(values.backend, values.compute_units);
    await requirePermissions([
      readNeed(values.model, "read the bundle"),
      netNeed(`${values.host}:${port}`, `listen on ${values.host}:${port}`),
    ]);
    const server = await serveBundle(values.model, {
      hostname: values.host,
      port,
      maxQueue,
      contextReuse,
      requestTimeoutSeconds: timeout,
      backend,
      ...(values.api_key === undefined ? {} : { apiKey: values.api_key }),
    });
    console.error(`serving ${values.model} at ${server.url}/v1 (Ctrl-C stops)`);
    const stop = () => {
      console.error("shutting down");
      server.shutdown();
    };
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const signal of signals) Deno.addSignalListener(signal, stop);
    try {
      await server.finished;
    } finally {
      for (const signal of signals) Deno.removeSignalListener(signal, stop);
    }
  },
};
