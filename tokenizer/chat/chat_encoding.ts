/**
 * Turning a conversation into ids: the template's special tokens (`<|im_start|>`, `<|eot_id|>`)
 * become special ids, while the messages' own text never does, so user content cannot end a turn
 * or forge one. The rendered text is encoded in one piece, as `apply_chat_template` encodes it,
 * with the messages' spans marked as plain text; where no message holds special-token text the
 * ids are `transformers`' exactly.
 *
 * The spans are found by rendering the conversation a second time with each message replaced by
 * a marker and matching the two renderings, which also covers templates that trim or otherwise
 * rewrite the content.
 *
 * @module
 */

import type { Tokenizer } from "../tokenizer.ts";
import {
  type ChatMessage,
  type ChatRenderOptions,
  type ChatTemplate,
  ChatTemplateError,
} from "./chat_template.ts";

/** A rendered conversation and its ids. */
export interface EncodedChat {
  /** What the template rendered. */
  readonly text: string;
  /** Its ids: template specials as special tokens, message text as plain text. */
  readonly ids: number[];
}

// Private-use characters no template writes: they delimit each message's marker.
const MARK_OPEN = "\u{10FFFD}";
const MARK_CLOSE = "\u{10FFFE}";

/** The spans `[start, end)` of the messages' text in `rendered`, or undefined if not found. */
async function messageSpans(
  template: ChatTemplate,
  options: ChatRenderOptions,
  rendered: string,
): Promise<[number, number][] | undefined> {
  const messages: ChatMessage[] = options.messages.map((message, i) => ({
    role: message.role,
    content: `${MARK_OPEN}${i}${MARK_CLOSE}`,
  }));
  const marked = await template.render({ ...options, messages });
  const parts = marked.split(new RegExp(`${MARK_OPEN}\\d+${MARK_CLOSE}`, "u"));
  const pattern = new RegExp(
    `^${parts.map((part) => RegExp.escape(part)).join("([\\s\\S]*?)")}$`,
    "du",
  );
  const match = pattern.exec(rendered);
  if (match === null) return undefined;
  return match.indices!.slice(1).map((span) => [span![0], span![1]]);
}

/**
 * Renders a conversation with `template` and encodes it with `tokenizer`.
 *
 * @throws {ChatTemplateError} when the template fails, or rewrites messages so that their text
 *   cannot be told apart from the template's while a message holds special-token text
 */
export async function encodeChat(
  tokenizer: Tokenizer,
  template: ChatTemplate,
  options: ChatRenderOptions,
): Promise<EncodedChat> {
  const text = await template.render(options);
  const spans = await messageSpans(template, options, text);
  if (spans === undefined) {
    const forging = options.messages.find(({ content }) =>
      tokenizer.encode(content, { allowedSpecial: "all" }).length !==
        tokenizer.encode(content).length
    );
    if (forging !== undefined) {
      throw new ChatTemplateError(
        template.name,
        `a ${forging.role} message holds special-token text, and the template rewrites ` +
          "messages so that their text cannot be told apart from the template's",
      );
    }
  }
  return {
    text,
    ids: tokenizer.encode(text, { allowedSpecial: "all", plainRanges: spans ?? [] }),
  };
}
