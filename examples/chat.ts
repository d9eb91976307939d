/**
 * A conversation that keeps the model's cache between turns: each turn prefills only the text it
 * adds to the conversation.
 *
 *   deno run -A chat.ts BUNDLE
 *
 * An instruct model's bundle carries its chat template; the King James model of
 * export_and_generate.ts has none, so this script gives it a plain one of its own.
 */

import { Chat, ChatTemplate, loadModel, loadTokenizer } from "@llamane/llamane";

const bundle = Deno.args[0];
if (bundle === undefined) throw new Error("Usage: chat.ts BUNDLE");

using model = await loadModel(bundle);
const tokenizer = await loadTokenizer(`${bundle}/tokenizer.model`);
// Jinja, as Hugging Face's tokenizer_config.json writes chat templates.
const template = ChatTemplate.parse(
  "{% for m in messages %}{{ m.content }}\n{% endfor %}",
  "plain lines",
);

const chat = new Chat(model, tokenizer, template, { maxNewTokens: 16, temperature: 0 });
for (const line of ["In the beginning", "And the earth was"]) {
  const answer = await chat.send(line);
  let text = "";
  for await (const piece of answer) text += piece.text;
  console.log(`> ${line}\n${text.trim()}`);
  console.log(`(prefilled ${answer.stats.promptTokens} tokens)`);
}
