/**
 * The routes the server answers: path, then method, then handler. Every route needs the API key
 * (when one is set) unless it is marked `open`.
 *
 * @module
 */

import { chatPageResponse } from "./chat_page.ts";
import { completionEndpoint } from "./completion_endpoint.ts";
import { parseChatRequest, parseTextRequest } from "./completion_request.ts";
import { health, listModels } from "./info_endpoints.ts";
import type { Handler } from "./request_context.ts";
import { CHAT_SHAPES, TEXT_SHAPES } from "./response_shapes.ts";

/** One method of one path. */
export interface Route {
  readonly handler: Handler;
  /** Answered without the API key. */
  readonly open?: boolean;
}

/** Every route, by path and method. */
export const ROUTES: Readonly<Record<string, Readonly<Record<string, Route>>>> = {
  "/": { GET: { handler: () => Promise.resolve(chatPageResponse()), open: true } },
  "/v1/chat/completions": {
    POST: { handler: completionEndpoint(parseChatRequest, CHAT_SHAPES) },
  },
  "/v1/completions": { POST: { handler: completionEndpoint(parseTextRequest, TEXT_SHAPES) } },
  "/v1/models": { GET: { handler: listModels } },
  "/health": { GET: { handler: health, open: true } },
};
