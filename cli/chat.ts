/**
 * `llamane chat`: a conversation in the terminal. Each answer streams as it comes, followed by a
 * stats line whose prompt count is what the turn prefilled (the cache keeps the conversation).
 * `/reset` starts over, `/system TEXT` changes the system message, Ctrl-D leaves, Ctrl-C stops the
 * current answer and keeps the conversation.
 *
 * @module
 */

import { type FlagTable, parseFlags, usage, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { writeText } from "./output.ts";
import {
  chatTemplateFor,
  formatStats,
  openBundleTokenizer,
  runFlags,
  samplingOptions,
} from "./run.ts";
import { Chat } from "../runtime/chat.ts";
import { GENERATE_DEFAULTS } from "../runtime/generate.ts";
import { loadModel } from "../runtime/load_model.ts";
import {
  BackendChoiceError,
  parseBackendRequest,
  parseComputeUnits,
} from "../runtime/backend/select.ts";

const flags = {
  model: runFlags.model,
  tokenizer: runFlags.tokenizer,
  system: { type: "string", value: "TEXT", help: "system message that opens the conversation" },
  chat_template: runFlags.chat_template,
  max_new_tokens: runFlags.max_new_tokens,
  temperature: runFlags.temperature,
  top_p: runFlags.top_p,
  top_k: runFlags.top_k,
  min_p: runFlags.min_p,
  repeat_penalty: runFlags.repeat_penalty,
  repeat_last_n: runFlags.repeat_last_n,
  seed: runFlags.seed,
  backend: runFlags.backend,
  compute_units: runFlags.compute_units,
} as const satisfies FlagTable;

/** Lines typed on stdin, without their line ends; ends at Ctrl-D (end of input). */
async function* lines(): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
      yield pending.slice(0, end).replace(/\r$/, "");
      pending = pending.slice(end + 1);
    }
  }
  if (pending !== "") yield pending;
}

/** `llamane chat -m BUNDLE [--system TEXT] ...` */
export const chatCommand: Command = {
  summary: "talk with a bundle through its chat template",
  usage: usage({
    command: "chat",
    synopsis: ["-m BUNDLE [--system TEXT] [flags]"],
    description: "Reads messages line by line and streams each answer, then a stats line to " +
      "stderr whose prompt count is what the turn prefilled: the cache keeps the conversation.",
    flags,
    notes: "/reset starts over, /system TEXT changes the system message, Ctrl-C stops an answer " +
      "and keeps the conversation, Ctrl-D leaves. A conversation longer than the bundle's cache " +
      "goes on with its oldest tokens dropped.",
  }),

  async main(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.model === undefined) throw new UsageError("Missing --model");
    let selection;
    try {
      selection = {
        backend: parseBackendRequest(values.backend),
        computeUnits: parseComputeUnits(values.compute_units),
      };
    } catch (error) {
      if (error instanceof BackendChoiceError) throw new UsageError(error.message);
      throw error;
    }
    const options = samplingOptions(values, GENERATE_DEFAULTS.temperature);
    const { manifest, tokenizer } = await openBundleTokenizer(values.model, values.tokenizer);
    const template = await chatTemplateFor(values.model, manifest, values.chat_template);
    using model = await loadModel(values.model, selection);
    const chat = new Chat(model, tokenizer, template, {
      ...options,
      ...(values.system === undefined ? {} : { system: values.system }),
    });

    let answering = false;
    let stopAnswer = false;
    const interrupt = () => {
      if (answering) stopAnswer = true;
    };
    Deno.addSignalListener("SIGINT", interrupt);
    let warnedWindow = false;
    try {
      console.error("/reset starts over, /system TEXT sets the system message, Ctrl-D leaves");
      await writeText("> ");
      for await (const line of lines()) {
        if (line === "/reset") {
          chat.reset();
        } else if (line === "/system" || line.startsWith("/system ")) {
          const text = line.slice("/system".length).trim();
          chat.system = text === "" ? undefined : text;
        } else if (line.trim() !== "") {
          const generation = await chat.send(line);
          answering = true;
          // The text of every token drawn is shown, so that the screen holds what the
          // conversation keeps of a stopped answer.
          for await (const { text } of generation) {
            await writeText(text);
            if (stopAnswer) break;
          }
          answering = false;
          stopAnswer = false;
          await writeText("\n");
          console.error(formatStats(generation.stats));
          if (!warnedWindow && chat.contextTokens > manifest.export.cacheLen) {
            warnedWindow = true;
            console.error(
              `The conversation is longer than the ${manifest.export.cacheLen}-token cache: ` +
                "its oldest tokens are dropped from now on.",
            );
          }
        }
        await writeText("> ");
      }
      await writeText("\n");
    } finally {
      Deno.removeSignalListener("SIGINT", interrupt);
    }
  },
};
