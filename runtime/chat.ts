/**
 * A conversation with a model: messages in, a streamed answer out, the KV cache kept between
 * turns. Each turn renders the whole conversation with the chat template and prefills only the
 * ids the cache does not hold yet, normally the end of the last answer and the new message (see
 * {@link PromptCache}).
 *
 * @module
 */

import type { ChatMessage, ChatTemplate } from "../tokenizer/chat/chat_template.ts";
import { encodeChat, type EncodedChat } from "../tokenizer/mod.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { LoadedModel } from "./model.ts";
import { PromptCache } from "./prompt_cache.ts";
import {
  checkTokenizerFits,
  defaultStopTokens,
  type GenerateOptions,
  Generation,
} from "./generate.ts";

/** Options of a {@link Chat}: a system message, and the defaults of every turn. */
export interface ChatOptions extends Omit<GenerateOptions, "lookahead" | "addBos"> {
  /** The system message that opens the conversation. */
  readonly system?: string;
}

/** The text of a special token, for the template's `bos_token` and `eos_token`. */
function tokenText(tokenizer: Tokenizer, id: number | undefined): string | undefined {
  if (id === undefined) return undefined;
  return tokenizer.idToPiece?.(id) ?? tokenizer.decode([id]);
}

/** A multi-turn conversation on one model, keeping its cache between turns. */
export class Chat {
  readonly #model: LoadedModel;
  readonly #tokenizer: Tokenizer;
  readonly #template: ChatTemplate;
  readonly #options: ChatOptions;
  readonly #cache: PromptCache;
  #system: string | undefined;
  #messages: ChatMessage[] = [];

  /**
   * Starts a conversation.
   *
   * @throws {RangeError} when the tokenizer has ids the model cannot embed
   */
  constructor(
    model: LoadedModel,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    options: ChatOptions = {},
  ) {
    checkTokenizerFits(model, tokenizer);
    this.#model = model;
    this.#tokenizer = tokenizer;
    this.#template = template;
    this.#options = options;
    this.#cache = new PromptCache(model);
    this.#system = options.system;
  }

  /** The conversation so far, system message first. */
  get messages(): readonly ChatMessage[] {
    return this.#system === undefined
      ? [...this.#messages]
      : [{ role: "system", content: this.#system }, ...this.#messages];
  }

  /** Tokens the conversation has put through the model (more than the cache when it slid). */
  get contextTokens(): number {
    return this.#cache.position;
  }

  /** Replaces the system message (undefined removes it); the conversation goes on. */
  set system(text: string | undefined) {
    this.#system = text;
  }

  /** Forgets every turn (the system message stays) and empties the cache. */
  reset(): void {
    this.#messages = [];
    this.#cache.reset();
  }

  /**
   * Adds a user message and starts the answer. Iterate the generation for its text; the answer
   * joins the conversation when iteration ends, also when it is stopped early. The generation's
   * `stats.promptTokens` counts the ids this turn prefilled.
   *
   * @throws {ChatTemplateError} when the template fails on the conversation
   */
  async send(content: string, options: ChatOptions = {}): Promise<Generation> {
    const turn = { ...this.#options, ...options };
    const messages = [...this.messages, { role: "user", content }];
    const { ids } = await encodeConversation(
      this.#model,
      this.#tokenizer,
      this.#template,
      messages,
    );
    this.#messages.push({ role: "user", content });
    const stopTokens = defaultStopTokens(this.#model, this.#tokenizer, turn);
    const generated: number[] = [];
    const tokens = async function* (this: Chat, stats: Generation["stats"]) {
      try {
        const options = { ...turn, stopTokens, sampledIds: this.#tokenizer.vocabSize };
        for await (const token of this.#cache.generate(ids, options, stats)) {
          generated.push(token);
          yield token;
        }
      } finally {
        this.#messages.push({ role: "assistant", content: this.#tokenizer.decode(generated) });
      }
    };
    return new Generation((stats) => tokens.call(this, stats), this.#tokenizer, ids);
  }
}

/**
 * Renders `messages` with the chat template, ready for the assistant's answer, and encodes them:
 * the template's `bos_token` and `eos_token` are the tokenizer's, else the bundle's.
 *
 * @throws {ChatTemplateError} when the template fails on the conversation
 */
export async function encodeConversation(
  model: LoadedModel,
  tokenizer: Tokenizer,
  template: ChatTemplate,
  messages: readonly ChatMessage[],
): Promise<EncodedChat> {
  const special = (key: "bosId" | "eosId") =>
    tokenText(tokenizer, specialIdOf(model, tokenizer, key));
  return await encodeChat(tokenizer, template, {
    messages,
    addGenerationPrompt: true,
    ...optionalText("bosToken", special("bosId")),
    ...optionalText("eosToken", special("eosId")),
  });
}

/** The tokenizer's BOS or EOS id, else the bundle's (from the checkpoint's configs). */
function specialIdOf(
  model: LoadedModel,
  tokenizer: Tokenizer,
  key: "bosId" | "eosId",
): number | undefined {
  return tokenizer[key] ?? model.manifest.tokenizer?.[key] ?? undefined;
}

function optionalText<K extends string>(key: K, text: string | undefined): { [P in K]?: string } {
  return text === undefined ? {} : { [key]: text } as { [P in K]: string };
}
