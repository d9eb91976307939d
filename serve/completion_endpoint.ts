/**
 * `POST /v1/chat/completions` and `POST /v1/completions`: read and validate the body, encode the
 * prompt, wait for the model's turn, then generate, either streaming chunks as server-sent events
 * or answering once at the end. The model's turn ends with the generation, also when the client
 * leaves, the request times out or the server shuts down: each stops it at its next token.
 *
 * @module
 */

import { ApiError } from "./api_error.ts";
import type { CompletionRequest } from "./completion_request.ts";
import {
  cancellation,
  CLIENT_CLOSED,
  type Handler,
  type RequestContext,
} from "./request_context.ts";
import { readJsonBody } from "./request_body.ts";
import type { JsonObject } from "./request_fields.ts";
import type { AnswerShapes, ResponseBase } from "./response_shapes.ts";
import type { EncodedPrompt, RunOutcome } from "./served_model.ts";
import type { ModelLease } from "./model_queue.ts";
import type { TokenLogprobs } from "./logprobs.ts";
import { SSE_DONE, sseData, sseResponse } from "./sse.ts";

/** A handler for one completion endpoint: its body parser and its answer shapes. */
export function completionEndpoint(
  parse: (body: JsonObject) => CompletionRequest,
  shapes: AnswerShapes,
): Handler {
  return async (request, context) => {
    const { served, queue } = context.server;
    const parsed = parse(await readJsonBody(request, context.server.body));
    if (parsed.model !== served.name) {
      throw new ApiError(
        404,
        `The model '${parsed.model}' does not exist: this server has '${served.name}'`,
        { param: "model", code: "model_not_found" },
      );
    }
    const prompt = await served.encode(parsed);
    let lease: ModelLease;
    try {
      lease = await queue.acquire(context.signal);
    } catch (error) {
      if (context.signal.aborted) throw cancellation(context);
      throw error;
    }
    const base: ResponseBase = {
      id: `${shapes.idPrefix}${crypto.randomUUID().replaceAll("-", "")}`,
      created: Math.floor(Date.now() / 1000),
      model: served.name,
    };
    if (!parsed.stream) {
      using _ = lease;
      return await answerWhole(context, prompt, parsed, shapes, base);
    }
    context.log.streaming = true;
    return sseResponse(
      streamAnswer(context, prompt, parsed, shapes, base),
      context.signal,
      (clientLeft) => {
        lease[Symbol.dispose]();
        if (clientLeft) context.log.status = CLIENT_CLOSED;
        context.release();
      },
    );
  };
}

async function answerWhole(
  context: RequestContext,
  prompt: EncodedPrompt,
  parsed: CompletionRequest,
  shapes: AnswerShapes,
  base: ResponseBase,
): Promise<Response> {
  let outcome: RunOutcome | undefined;
  let text = "";
  const logprobs: TokenLogprobs[] = [];
  const { signal, startedAt } = context;
  for await (
    const delta of context.server.served.run(prompt, parsed, signal, startedAt, (ended) => {
      outcome = context.log.outcome = ended;
    })
  ) {
    text += delta.text;
    logprobs.push(...delta.logprobs);
  }
  if (outcome === undefined) throw new Error("The generation ended without an outcome");
  if (outcome.finishReason === "cancelled") throw cancellation(context);
  const body = shapes.whole(
    base,
    text,
    parsed.topLogprobs === undefined ? undefined : logprobs,
    outcome.finishReason,
    outcome,
  );
  return Response.json(body);
}

async function* streamAnswer(
  context: RequestContext,
  prompt: EncodedPrompt,
  parsed: CompletionRequest,
  shapes: AnswerShapes,
  base: ResponseBase,
): AsyncGenerator<string, void> {
  const { log } = context;
  log.status = 200;
  try {
    const opening = shapes.opening(base);
    if (opening !== undefined) yield sseData(opening);
    const withLogprobs = parsed.topLogprobs !== undefined;
    let outcome: RunOutcome | undefined;
    let sent = 0;
    const { signal, startedAt } = context;
    for await (
      const delta of context.server.served.run(prompt, parsed, signal, startedAt, (ended) => {
        outcome = log.outcome = ended;
      })
    ) {
      yield sseData(shapes.delta(base, delta, withLogprobs, sent));
      sent += delta.text.length;
    }
    if (outcome === undefined) throw new Error("The generation ended without an outcome");
    if (outcome.finishReason === "cancelled") {
      const error = cancellation(context);
      log.status = error.status;
      yield sseData(error);
      return;
    }
    yield sseData(shapes.finish(base, outcome.finishReason));
    if (parsed.includeUsage) yield sseData(shapes.usage(base, outcome));
    yield SSE_DONE;
  } catch (error) {
    const apiError = error instanceof ApiError ? error : new ApiError(500, String(error));
    log.status = apiError.status;
    yield sseData(apiError);
  }
}
