/**
 * The JSON the OpenAI API answers with: chat completions and their stream chunks, text
 * completions and theirs, usage counts and log probabilities in each endpoint's shape.
 *
 * @module
 */

import type { TokenLogprobs } from "./logprobs.ts";
import type { RunDelta, RunOutcome } from "./served_model.ts";

/** What every response and chunk of one request shares. */
export interface ResponseBase {
  readonly id: string;
  readonly created: number;
  readonly model: string;
}

/** `finish_reason` as the API names it. */
export type FinishReason = "stop" | "length";

/** The `usage` object. */
export function usage(outcome: RunOutcome) {
  return {
    prompt_tokens: outcome.promptTokens,
    completion_tokens: outcome.completionTokens,
    total_tokens: outcome.promptTokens + outcome.completionTokens,
    prompt_tokens_details: { cached_tokens: outcome.cachedTokens },
  };
}

function chatLogprobs(list: readonly TokenLogprobs[]) {
  return {
    content: list.map(({ token, logprob, bytes, top }) => ({
      token,
      logprob,
      bytes,
      top_logprobs: top.map(({ token, logprob, bytes }) => ({ token, logprob, bytes })),
    })),
  };
}

function textLogprobs(list: readonly TokenLogprobs[], offset: number) {
  const textOffset: number[] = [];
  for (const { token } of list) {
    textOffset.push(offset);
    offset += token.length;
  }
  return {
    tokens: list.map(({ token }) => token),
    token_logprobs: list.map(({ logprob }) => logprob),
    top_logprobs: list.map(({ top }) =>
      Object.fromEntries(top.map(({ token, logprob }) => [token, logprob]))
    ),
    text_offset: textOffset,
  };
}

/** How one endpoint shapes its answers. */
export interface AnswerShapes {
  /** The prefix of its response ids. */
  readonly idPrefix: string;
  /** The chunk that opens a stream, if the endpoint sends one. */
  opening(base: ResponseBase): object | undefined;
  /** The chunk carrying a delta; `offset` is the length of the text sent before it. */
  delta(base: ResponseBase, delta: RunDelta, withLogprobs: boolean, offset: number): object;
  /** The chunk that ends the choice. */
  finish(base: ResponseBase, reason: FinishReason): object;
  /** The chunk carrying the usage, after the choice ended. */
  usage(base: ResponseBase, outcome: RunOutcome): object;
  /** The whole answer of a request that did not stream. */
  whole(
    base: ResponseBase,
    text: string,
    logprobs: readonly TokenLogprobs[] | undefined,
    reason: FinishReason,
    outcome: RunOutcome,
  ): object;
}

/** `POST /v1/chat/completions`: `chat.completion` and `chat.completion.chunk` objects. */
export const CHAT_SHAPES: AnswerShapes = {
  idPrefix: "chatcmpl-",
  opening: (base) => chatChunk(base, { role: "assistant", content: "" }, null, null),
  delta: (base, delta, withLogprobs) =>
    chatChunk(
      base,
      { content: delta.text },
      withLogprobs ? chatLogprobs(delta.logprobs) : null,
      null,
    ),
  finish: (base, reason) => chatChunk(base, {}, null, reason),
  usage: (base, outcome) => ({
    ...chunkBase(base, "chat.completion.chunk"),
    choices: [],
    usage: usage(outcome),
  }),
  whole: (base, text, logprobs, reason, outcome) => ({
    ...chunkBase(base, "chat.completion"),
    choices: [{
      index: 0,
      message: { role: "assistant", content: text, refusal: null },
      logprobs: logprobs === undefined ? null : chatLogprobs(logprobs),
      finish_reason: reason,
    }],
    usage: usage(outcome),
  }),
};

/** `POST /v1/completions`: `text_completion` objects, streamed or whole. */
export const TEXT_SHAPES: AnswerShapes = {
  idPrefix: "cmpl-",
  opening: () => undefined,
  delta: (base, delta, withLogprobs, offset) =>
    textChoice(base, delta.text, withLogprobs ? textLogprobs(delta.logprobs, offset) : null, null),
  finish: (base, reason) => textChoice(base, "", null, reason),
  usage: (base, outcome) => ({
    ...chunkBase(base, "text_completion"),
    choices: [],
    usage: usage(outcome),
  }),
  whole: (base, text, logprobs, reason, outcome) => ({
    ...textChoice(base, text, logprobs === undefined ? null : textLogprobs(logprobs, 0), reason),
    usage: usage(outcome),
  }),
};

function chunkBase(base: ResponseBase, object: string) {
  return { id: base.id, object, created: base.created, model: base.model };
}

function chatChunk(
  base: ResponseBase,
  delta: object,
  logprobs: object | null,
  reason: FinishReason | null,
) {
  return {
    ...chunkBase(base, "chat.completion.chunk"),
    choices: [{ index: 0, delta, logprobs, finish_reason: reason }],
  };
}

function textChoice(
  base: ResponseBase,
  text: string,
  logprobs: object | null,
  reason: FinishReason | null,
) {
  return {
    ...chunkBase(base, "text_completion"),
    choices: [{ index: 0, text, logprobs, finish_reason: reason }],
  };
}
