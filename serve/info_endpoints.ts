/**
 * `GET /v1/models` (the one model served) and `GET /health` (the server is up, and how busy).
 *
 * @module
 */

import type { Handler } from "./request_context.ts";

/** `GET /v1/models`: a list holding the served model. */
export const listModels: Handler = (_request, { server }) =>
  Promise.resolve(Response.json({
    object: "list",
    data: [{
      id: server.served.name,
      object: "model",
      created: server.served.created,
      owned_by: "llamane",
    }],
  }));

/** `GET /health`: up, whether a generation runs, and how many requests wait for the model. */
export const health: Handler = (_request, { server }) =>
  Promise.resolve(Response.json({
    status: "ok",
    busy: server.queue.busy,
    waiting: server.queue.waiting,
  }));
