/**
 * Validating the bodies of `POST /v1/chat/completions` and `POST /v1/completions` into one
 * request shape: what to generate from (messages or a prompt) and how (the sampling fields, stop
 * strings, streaming, log probabilities). Fields the API defines but llamane cannot honour (more
 * than one choice, tools, echo) are refused rather than silently ignored.
 *
 * @module
 */

import type { ChatMessage } from "../tokenizer/chat/chat_template.ts";
import { invalidField } from "./api_error.ts";
import {
  arrayField,
  booleanField,
  describeJson,
  isJsonObject,
  type JsonObject,
  numberField,
  objectField,
  stringField,
} from "./request_fields.ts";

/** Most stop strings a request may give, as the OpenAI API allows. */
export const MAX_STOP_STRINGS = 4;
/** Most alternatives per token in `top_logprobs` (chat) and `logprobs` (completions). */
export const MAX_TOP_LOGPROBS = { chat: 20, text: 5 } as const;

/** How to generate: the fields both endpoints share. */
export interface SamplingRequest {
  /** The model the client named. */
  readonly model: string;
  /** Most tokens to generate; undefined is as many as the context leaves. */
  readonly maxTokens: number | undefined;
  readonly temperature: number;
  readonly topP: number;
  readonly topK: number;
  readonly minP: number;
  readonly seed: number | undefined;
  /** Texts that end the answer where they first appear (not included). */
  readonly stop: readonly string[];
  readonly stream: boolean;
  /** Send a last chunk with the usage counts (`stream_options.include_usage`). */
  readonly includeUsage: boolean;
  /** Report each token's log probability with this many alternatives; undefined: none. */
  readonly topLogprobs: number | undefined;
}

/** A chat completion: the conversation to answer. */
export interface ChatRequest extends SamplingRequest {
  readonly kind: "chat";
  readonly messages: readonly ChatMessage[];
}

/** A text completion: the text (or token ids) to continue. */
export interface TextRequest extends SamplingRequest {
  readonly kind: "text";
  readonly prompt: string | readonly number[];
}

/** A validated request of either endpoint. */
export type CompletionRequest = ChatRequest | TextRequest;

/** OpenAI's default temperature and nucleus mass: plain sampling from the model. */
const API_DEFAULTS = { temperature: 1, topP: 1 } as const;

function refuse(param: string, what: string) {
  return invalidField(param, `Unsupported '${param}': ${what}`, "unsupported_parameter");
}

function stopStrings(body: JsonObject): string[] {
  const value = body.stop;
  if (value === undefined || value === null) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.some((item) => typeof item !== "string")) {
    throw invalidField("stop", `Invalid 'stop': expected a string or an array of strings`);
  }
  if (list.length > MAX_STOP_STRINGS) {
    throw invalidField("stop", `Invalid 'stop': at most ${MAX_STOP_STRINGS} strings`);
  }
  return (list as string[]).filter((text) => text !== "");
}

function samplingFields(body: JsonObject, topLogprobs: number | undefined): SamplingRequest {
  const model = stringField(body, "model");
  if (model === undefined) throw invalidField("model", "Missing 'model'");
  const n = numberField(body, "n", { min: 1, max: Number.MAX_SAFE_INTEGER, integer: true });
  if (n !== undefined && n !== 1) throw refuse("n", "only one choice per request (n = 1)");
  const tokens = { min: 1, max: Number.MAX_SAFE_INTEGER, integer: true };
  const maxTokens = numberField(body, "max_completion_tokens", tokens) ??
    numberField(body, "max_tokens", tokens);
  const stream = booleanField(body, "stream") ?? false;
  const streamOptions = objectField(body, "stream_options");
  if (streamOptions !== undefined && !stream) {
    throw invalidField("stream_options", "'stream_options' is only allowed with 'stream': true");
  }
  for (const penalty of ["frequency_penalty", "presence_penalty"]) {
    const value = numberField(body, penalty, { min: -2, max: 2 });
    if (value !== undefined && value !== 0) throw refuse(penalty, "only 0");
  }
  return {
    model,
    maxTokens,
    temperature: numberField(body, "temperature", { min: 0, max: 2 }) ?? API_DEFAULTS.temperature,
    topP: numberField(body, "top_p", { min: 0, max: 1 }) ?? API_DEFAULTS.topP,
    topK: numberField(body, "top_k", { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }) ??
      0,
    minP: numberField(body, "min_p", { min: 0, max: 1 }) ?? 0,
    seed: numberField(body, "seed", {
      min: Number.MIN_SAFE_INTEGER,
      max: Number.MAX_SAFE_INTEGER,
      integer: true,
    }),
    stop: stopStrings(body),
    stream,
    includeUsage: streamOptions === undefined
      ? false
      : booleanField(streamOptions, "include_usage") ?? false,
    topLogprobs,
  };
}

/** The text of a message's content: a string, or an array of text parts. */
function messageText(content: unknown, param: string): string {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) return "";
  if (!Array.isArray(content)) {
    throw invalidField(
      param,
      `Invalid '${param}': expected a string or an array of parts, got ${describeJson(content)}`,
    );
  }
  return content.map((part, i) => {
    if (!isJsonObject(part) || part.type !== "text" || typeof part.text !== "string") {
      throw refuse(`${param}[${i}]`, 'only text parts ({"type": "text", "text": ...})');
    }
    return part.text;
  }).join("");
}

const ROLES: Readonly<Record<string, string>> = {
  system: "system",
  // The newer name of the system role.
  developer: "system",
  user: "user",
  assistant: "assistant",
};

/**
 * Validates a conversation: a non-empty list of `{role, content}` messages, `content` a string or
 * text parts.
 */
export function parseMessages(list: readonly unknown[] | undefined): ChatMessage[] {
  if (list === undefined || list.length === 0) {
    throw invalidField("messages", "Missing 'messages': expected a non-empty array");
  }
  return list.map((message, i): ChatMessage => {
    const param = `messages[${i}]`;
    if (!isJsonObject(message)) {
      throw invalidField(
        param,
        `Invalid '${param}': expected an object, got ${describeJson(message)}`,
      );
    }
    const role = stringField(message, "role");
    const mapped = role === undefined ? undefined : ROLES[role];
    if (mapped === undefined) {
      throw invalidField(
        `${param}.role`,
        `Invalid '${param}.role': expected one of ${Object.keys(ROLES).join(", ")}, got ${
          describeJson(message.role)
        }`,
      );
    }
    return { role: mapped, content: messageText(message.content, `${param}.content`) };
  });
}

/** Validates the body of `POST /v1/chat/completions`. */
export function parseChatRequest(body: JsonObject): ChatRequest {
  const messages = parseMessages(arrayField(body, "messages"));
  const tools = arrayField(body, "tools");
  if (tools !== undefined && tools.length > 0) throw refuse("tools", "tool calls");
  const format = objectField(body, "response_format");
  if (format !== undefined && format.type !== "text") throw refuse("response_format", "only text");
  const logprobs = booleanField(body, "logprobs") ?? false;
  const top = numberField(body, "top_logprobs", {
    min: 0,
    max: MAX_TOP_LOGPROBS.chat,
    integer: true,
  });
  if (top !== undefined && !logprobs) {
    throw invalidField("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  }
  return {
    kind: "chat",
    messages,
    ...samplingFields(body, logprobs ? top ?? 0 : undefined),
  };
}

function isTokenList(value: unknown): value is number[] {
  return Array.isArray(value) && value.length > 0 &&
    value.every((id) => Number.isSafeInteger(id) && id >= 0);
}

/** The one prompt of a completion: a string or token ids, alone or as a list of one. */
function singlePrompt(body: JsonObject): string | number[] {
  const value = body.prompt;
  if (typeof value === "string" || isTokenList(value)) return value;
  if (Array.isArray(value) && value.length === 1) {
    const [only] = value;
    if (typeof only === "string" || isTokenList(only)) return only;
  }
  if (Array.isArray(value) && value.length > 1 && !value.every((id) => typeof id === "number")) {
    throw refuse("prompt", "one prompt per request");
  }
  throw invalidField(
    "prompt",
    `Invalid 'prompt': expected a string or token ids, got ${describeJson(value)}`,
  );
}

/** Validates the body of `POST /v1/completions`. */
export function parseTextRequest(body: JsonObject): TextRequest {
  const prompt = singlePrompt(body);
  if (booleanField(body, "echo")) throw refuse("echo", "the prompt is not echoed");
  if (stringField(body, "suffix") !== undefined) throw refuse("suffix", "no insertion");
  const bestOf = numberField(body, "best_of", { min: 1, max: 20, integer: true });
  if (bestOf !== undefined && bestOf !== 1) throw refuse("best_of", "only 1");
  const top = numberField(body, "logprobs", { min: 0, max: MAX_TOP_LOGPROBS.text, integer: true });
  return { kind: "text", prompt, ...samplingFields(body, top) };
}
