/**
 * The model a server answers with: requests become prompt ids (the chat template for messages,
 * the tokenizer for text) checked against the context, and generation streams text deltas that
 * stop strings cut, continuing the cached prompt when the new one extends it.
 *
 * @module
 */

import { type ChatTemplate, ChatTemplateError } from "../tokenizer/chat/chat_template.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { LoadedModel } from "../runtime/model.ts";
import { PromptCache } from "../runtime/prompt_cache.ts";
import { defaultStopTokens, Generation } from "../runtime/generate.ts";
import { encodeConversation } from "../runtime/chat.ts";
import { ApiError, invalidField } from "./api_error.ts";
import type { ChatRequest, CompletionRequest } from "./completion_request.ts";
import { StopMatcher } from "./stop_strings.ts";
import { type TokenLogprobs, tokenLogprobs } from "./logprobs.ts";

/** A request's prompt, ready to run. */
export interface EncodedPrompt {
  readonly ids: readonly number[];
  /** Most tokens to generate: the request's, else what the context leaves. */
  readonly maxTokens: number;
}

/** Text released by one step of a generation, with the log probabilities of its tokens. */
export interface RunDelta {
  readonly text: string;
  readonly logprobs: readonly TokenLogprobs[];
}

/** How a generation ended, and its counts. */
export interface RunOutcome {
  /** `stop`: a stop token or string; `length`: the token budget; `cancelled`: the signal. */
  readonly finishReason: "stop" | "length" | "cancelled";
  /** The prompt's ids. */
  readonly promptTokens: number;
  /** Of those, the ones the cache already held (not prefilled). */
  readonly cachedTokens: number;
  readonly completionTokens: number;
  /** Seconds from `startedAt` to the first generated token, if one came. */
  readonly firstTokenSeconds: number | undefined;
  /** Seconds from the first generated token to the last. */
  readonly decodeSeconds: number;
}

/** What a server needs of its model. */
export interface ServedModelOptions {
  /** The id clients name it by (`model`). */
  readonly name: string;
  readonly model: LoadedModel;
  readonly tokenizer: Tokenizer;
  /** The chat template; without one, chat completions are refused. */
  readonly template: ChatTemplate | undefined;
  /** Keep the cache between requests, so a prompt extending the last prefills only the rest. */
  readonly contextReuse: boolean;
}

/** A loaded model with its tokenizer, template and prompt cache, answering one request at a time. */
export class ServedModel {
  /** The id clients name it by. */
  readonly name: string;
  /** Tokens of prompt and answer together: the bundle's cache length. */
  readonly contextLength: number;
  /** When the server started, in seconds since the epoch (`created` of the model list). */
  readonly created: number = Math.floor(Date.now() / 1000);
  readonly #model: LoadedModel;
  readonly #tokenizer: Tokenizer;
  readonly #template: ChatTemplate | undefined;
  readonly #contextReuse: boolean;
  readonly #cache: PromptCache;
  readonly #stopTokens: readonly number[];

  constructor(options: ServedModelOptions) {
    this.name = options.name;
    this.#model = options.model;
    this.#tokenizer = options.tokenizer;
    this.#template = options.template;
    this.#contextReuse = options.contextReuse;
    this.#cache = new PromptCache(options.model);
    this.#stopTokens = defaultStopTokens(options.model, options.tokenizer, {});
    this.contextLength = options.model.manifest.export.cacheLen;
  }

  /**
   * The request's prompt ids and token budget.
   *
   * @throws {ApiError} 400 when the template fails, an id is out of range, or prompt and budget
   *   exceed the context
   */
  async encode(request: CompletionRequest): Promise<EncodedPrompt> {
    const ids = request.kind === "chat"
      ? await this.#encodeMessages(request.messages)
      : this.#encodePrompt(request.prompt);
    const param = request.kind === "chat" ? "messages" : "prompt";
    if (ids.length === 0) throw invalidField(param, "The prompt has no tokens");
    const room = this.contextLength - ids.length;
    // At least one token must fit after the prompt.
    const maxTokens = request.maxTokens ?? Math.max(room, 1);
    if (maxTokens > room) {
      throw invalidField(
        room > 0 ? "max_tokens" : param,
        `This model's context is ${this.contextLength} tokens, but ${
          ids.length + maxTokens
        } were requested (${ids.length} in the prompt, ${maxTokens} for the completion)`,
        "context_length_exceeded",
      );
    }
    return { ids, maxTokens };
  }

  async #encodeMessages(messages: ChatRequest["messages"]): Promise<readonly number[]> {
    if (this.#template === undefined) {
      throw new ApiError(400, "This model has no chat template: use /v1/completions", {
        param: "messages",
        code: "no_chat_template",
      });
    }
    try {
      const encoded = await encodeConversation(
        this.#model,
        this.#tokenizer,
        this.#template,
        messages,
      );
      return encoded.ids;
    } catch (error) {
      if (error instanceof ChatTemplateError) throw invalidField("messages", error.message);
      throw error;
    }
  }

  #encodePrompt(prompt: string | readonly number[]): readonly number[] {
    if (typeof prompt === "string") {
      const bos = this.#model.manifest.tokenizer?.addBos ?? this.#tokenizer.addBos;
      return this.#tokenizer.encode(prompt, { bos });
    }
    const bad = prompt.find((id) => id >= this.#tokenizer.vocabSize);
    if (bad !== undefined) {
      throw invalidField(
        "prompt",
        `Invalid 'prompt': token ${bad} is not an id below ${this.#tokenizer.vocabSize}`,
      );
    }
    return prompt;
  }

  /**
   * Generates the answer to an encoded prompt: text deltas as they are released. Stops at the
   * first token after `signal` aborts. `ended` gets the outcome when the generation ends, also
   * when the caller stops iterating early. The caller holds the model's turn.
   *
   * @param startedAt when the request arrived (`performance.now()`), for the first token's time
   */
  async *run(
    prompt: EncodedPrompt,
    request: CompletionRequest,
    signal: AbortSignal,
    startedAt: number,
    ended: (outcome: RunOutcome) => void,
  ): AsyncGenerator<RunDelta, void> {
    if (!this.#contextReuse) this.#cache.reset();
    const stops = new StopMatcher(request.stop);
    let pending: TokenLogprobs[] = [];
    const top = request.topLogprobs;
    const options = {
      maxNewTokens: prompt.maxTokens,
      temperature: request.temperature,
      topP: request.topP,
      topK: request.topK,
      minP: request.minP,
      ...(request.seed === undefined ? {} : { seed: request.seed }),
      stopTokens: this.#stopTokens,
      sampledIds: this.#tokenizer.vocabSize,
      ...(top === undefined ? {} : {
        onToken: (token: number, logits: ArrayLike<number>) =>
          pending.push(tokenLogprobs(logits, token, top, this.#tokenizer)),
      }),
    };
    const generation = new Generation(
      (stats) => this.#cache.generate(prompt.ids, options, stats),
      this.#tokenizer,
      prompt.ids,
    );
    // Undefined until the generation ends: left so, the caller stopped iterating.
    let finishReason: RunOutcome["finishReason"] | undefined;
    let firstTokenAt: number | undefined;
    try {
      for await (const { token, text } of generation) {
        if (token !== null) firstTokenAt ??= performance.now();
        const { text: released, stopped } = stops.push(text);
        const logprobs = pending;
        pending = [];
        if (released !== "" || logprobs.length > 0) yield { text: released, logprobs };
        if (stopped) {
          finishReason = "stop";
          break;
        }
        if (signal.aborted) {
          finishReason = "cancelled";
          break;
        }
      }
      if (finishReason === undefined) {
        const rest = stops.flush();
        if (rest !== "") yield { text: rest, logprobs: [] };
        finishReason = generation.stats.finishReason ?? "length";
      }
    } finally {
      const stats = generation.stats;
      ended({
        finishReason: finishReason ?? "cancelled",
        promptTokens: prompt.ids.length,
        cachedTokens: prompt.ids.length - stats.promptTokens,
        completionTokens: stats.generatedTokens,
        firstTokenSeconds: firstTokenAt === undefined
          ? undefined
          : (firstTokenAt - startedAt) / 1000,
        decodeSeconds: stats.decodeSeconds,
      });
    }
  }
}
