/**
 * Chat templates: the Jinja template a model's `tokenizer_config.json` or GGUF
 * (`tokenizer.chat_template`) carries, rendered with `@huggingface/jinja` as `transformers`'
 * `apply_chat_template` renders it (blocks trimmed, `messages`, `add_generation_prompt`, the
 * special tokens by name, `raise_exception`). Rendering runs in a worker with a time limit, so a
 * template that throws or never ends gives a {@link ChatTemplateError} instead of a hang.
 *
 * @module
 */

import { Template } from "./jinja.ts";

/** One turn of a conversation. */
export interface ChatMessage {
  /** `system`, `user` or `assistant` (templates may know others). */
  readonly role: string;
  /** The text of the turn. */
  readonly content: string;
}

/** What a template is rendered with. */
export interface ChatRenderOptions {
  /** The conversation so far. */
  readonly messages: readonly ChatMessage[];
  /**
   * End with the header of an assistant turn, for the model to continue.
   * @default true
   */
  readonly addGenerationPrompt?: boolean;
  /** The text of the beginning-of-sequence token, given to the template as `bos_token`. */
  readonly bosToken?: string;
  /** The text of the end-of-sequence token, given to the template as `eos_token`. */
  readonly eosToken?: string;
  /**
   * Longest a rendering may take, in milliseconds.
   * @default 5000
   */
  readonly timeoutMs?: number;
}

/** A template that cannot be parsed, throws, or takes too long. */
export class ChatTemplateError extends Error {
  /** Builds the message `Cannot render the chat template "<name>": <detail>`. */
  constructor(name: string, detail: string) {
    super(`Cannot render the chat template "${name}": ${detail}`);
    this.name = "ChatTemplateError";
  }
}

/** A parsed chat template. */
export class ChatTemplate {
  /** Where the template came from, for messages. */
  readonly name: string;
  /** The Jinja source. */
  readonly source: string;

  private constructor(name: string, source: string) {
    this.name = name;
    this.source = source;
  }

  /**
   * Parses a template; syntax errors are reported now rather than at the first turn.
   *
   * @param name where it came from, e.g. `tokenizer_config.json`
   * @throws {ChatTemplateError} when the source is not a valid template
   */
  static parse(source: string, name: string): ChatTemplate {
    try {
      new Template(source);
    } catch (error) {
      throw new ChatTemplateError(name, `it does not parse: ${(error as Error).message}`);
    }
    return new ChatTemplate(name, source);
  }

  /**
   * Renders the conversation to the text the model reads.
   *
   * @throws {ChatTemplateError} when the template raises, fails, or runs past the time limit
   */
  render(options: ChatRenderOptions): Promise<string> {
    const context = {
      messages: options.messages.map(({ role, content }) => ({ role, content })),
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: options.bosToken ?? "",
      eos_token: options.eosToken ?? "",
    };
    const timeoutMs = options.timeoutMs ?? 5000;
    const worker = new Worker(new URL("./render_worker.ts", import.meta.url), { type: "module" });
    let timer: ReturnType<typeof setTimeout> | undefined;
    return new Promise<string>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<{ ready?: true; text?: string; error?: string }>) => {
        const { ready, text, error } = event.data;
        if (ready) {
          // Timed from here: loading the worker is not the template's doing.
          timer = setTimeout(() => {
            reject(new ChatTemplateError(this.name, `it ran for more than ${timeoutMs} ms`));
          }, timeoutMs);
          worker.postMessage({ source: this.source, context });
        } else if (text !== undefined) resolve(text);
        else reject(new ChatTemplateError(this.name, `it failed: ${error}`));
      };
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new ChatTemplateError(this.name, `it failed: ${event.message}`));
      };
    }).finally(() => {
      clearTimeout(timer);
      worker.terminate();
    });
  }
}
