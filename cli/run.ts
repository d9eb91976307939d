/**
 * `llamane run`: generate text from a bundle, streaming it as it comes, then a stats line.
 *
 * @module
 */

import {
  type FlagTable,
  parseFlags,
  parseInteger,
  parseNumber,
  usage,
  UsageError,
} from "./args.ts";
import type { Command } from "./command.ts";
import { writeText } from "./output.ts";
import { openCheckpoint } from "../checkpoint/mod.ts";
import { EagerLlama } from "../llama/forward.ts";
import { type BundleManifest, readManifest } from "../bundle/manifest.ts";
import { readBundledChatTemplate, readBundledTokenizer } from "../bundle/tokenizer.ts";
import { readNeed, requirePermissions } from "../permissions.ts";
import { compareWithEager } from "../runtime/compare.ts";
import { generate, GENERATE_DEFAULTS, type GenerateOptions } from "../runtime/generate.ts";
import { Chat, encodeConversation } from "../runtime/chat.ts";
import { ApiError } from "../serve/api_error.ts";
import { isJsonObject } from "../serve/request_fields.ts";
import { parseMessages } from "../serve/completion_request.ts";
import { LOOKAHEAD_DEFAULTS } from "../runtime/lookahead.ts";
import { loadModel } from "../runtime/load_model.ts";
import { COMPUTE_UNITS_CODES } from "../ffi/coreml.ts";
import type { GenerationStats } from "../runtime/generation_stats.ts";
import {
  BACKEND_DEFAULTS,
  BackendChoiceError,
  parseBackendRequest,
  parseComputeUnits,
} from "../runtime/backend/select.ts";
import { type ChatMessage, ChatTemplate } from "../tokenizer/chat/chat_template.ts";
import { loadTokenizer } from "../tokenizer/load.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** The flags of `run`; `chat` shares those that name the bundle and how to sample. */
export const runFlags = {
  model: {
    type: "string",
    short: "m",
    value: "BUNDLE",
    help: "bundle directory written by llamane export",
  },
  tokenizer: {
    type: "string",
    short: "t",
    value: "PATH",
    help: "tokenizer.model",
    defaultText: "the bundle's",
  },
  prompt: {
    type: "string",
    value: "TEXT",
    help: "text to continue, or with --chat the user's message (- reads it from stdin)",
    default: "Once upon a time,",
  },
  chat: { type: "boolean", help: "answer --prompt as one user turn through the chat template" },
  system: { type: "string", value: "TEXT", help: "system message of --chat" },
  messages: {
    type: "string",
    value: "FILE",
    help: "with --chat, answer this conversation instead of --prompt: a JSON list of " +
      '{"role", "content"} messages, or a chat completions request body',
  },
  chat_template: {
    type: "string",
    value: "FILE",
    help: "Jinja chat template to use instead of the bundle's",
  },
  max_new_tokens: {
    type: "string",
    short: "n",
    value: "N",
    help: "most tokens to generate",
    default: String(GENERATE_DEFAULTS.maxNewTokens),
  },
  temperature: {
    type: "string",
    alias: "temp",
    value: "T",
    help: "0 is greedy",
    defaultText: `${GENERATE_DEFAULTS.temperature}; 0 with --lookahead`,
  },
  top_p: {
    type: "string",
    value: "P",
    help: "nucleus sampling mass",
    default: String(GENERATE_DEFAULTS.topP),
  },
  top_k: {
    type: "string",
    value: "K",
    help: "sample among the K most likely; 0 keeps all",
    default: "0",
  },
  min_p: {
    type: "string",
    value: "P",
    help: "drop tokens less than P times as likely as the most likely",
    default: "0",
  },
  repeat_penalty: {
    type: "string",
    value: "R",
    help: "divide the logits of recent tokens by R (llama.cpp's); 1 is off",
    default: "1",
  },
  repeat_last_n: {
    type: "string",
    value: "N",
    help: "recent tokens the repeat penalty looks at",
    default: "64",
  },
  seed: { type: "string", value: "N", help: "seed of the sampler", defaultText: "random" },
  backend: {
    type: "string",
    value: "B",
    help: "auto (Core ML on macOS when its bridge is built, else cpu), cpu or coreml",
    default: BACKEND_DEFAULTS.backend,
  },
  compute_units: {
    type: "string",
    value: "U",
    help: `Core ML compute units: ${Object.keys(COMPUTE_UNITS_CODES).join(", ")}`,
    default: BACKEND_DEFAULTS.computeUnits,
  },
  lookahead: {
    type: "boolean",
    help: "greedy decoding in fewer model calls (single-method bundles)",
  },
  ngram_size: {
    type: "string",
    value: "N",
    help: "lookahead n-gram length",
    default: String(LOOKAHEAD_DEFAULTS.ngramSize),
  },
  window_size: {
    type: "string",
    value: "W",
    help: "lookahead window columns",
    default: String(LOOKAHEAD_DEFAULTS.windowSize),
  },
  n_verifications: {
    type: "string",
    value: "G",
    help: "candidate n-grams verified per call; (N-1)*(W+G) must not exceed the bundle's input_len",
    default: String(LOOKAHEAD_DEFAULTS.verifications),
  },
  compare_eager: {
    type: "string",
    value: "CKPT",
    help: "also run the eager fp32 reference on the same tokens and report the largest logit " +
      "difference and the top-1 agreement",
  },
} as const satisfies FlagTable;
const flags = runFlags;

function rate(tokens: number, seconds: number): string {
  return seconds > 0 ? `${(tokens / seconds).toFixed(1)} tok/s` : "- tok/s";
}

/** The one-line summary printed after the text. */
export function formatStats(stats: GenerationStats): string {
  const parts = [
    `prompt ${stats.promptTokens} tokens`,
    `prefill ${rate(stats.promptTokens, stats.prefillSeconds)}`,
    `generated ${stats.generatedTokens} tokens`,
    `decode ${rate(Math.max(stats.generatedTokens - 1, 0), stats.decodeSeconds)}`,
    `${stats.modelCalls} model calls`,
  ];
  const lookahead = stats.lookahead;
  if (lookahead !== undefined && lookahead.decodeCalls > 0) {
    // The first token comes from the prefill call; the rest from the lookahead calls.
    const perCall = Math.max(stats.generatedTokens - 1, 0) / lookahead.decodeCalls;
    const histogram = lookahead.acceptance.map((count, extra) => `+${extra}:${count}`).join(" ");
    parts.push(`${perCall.toFixed(2)} tokens per decode call (accepted ${histogram})`);
  }
  if (stats.backend !== undefined) parts.push(`on ${stats.backend}`);
  return parts.join(" | ");
}

/** The backend flags' choice; a bad value is a usage error. */
export function backendSelection(backend: string, computeUnits: string) {
  try {
    return { backend: parseBackendRequest(backend), computeUnits: parseComputeUnits(computeUnits) };
  } catch (error) {
    if (error instanceof BackendChoiceError) throw new UsageError(error.message);
    throw error;
  }
}

/** The sampling flags' options; `temperature` when the flag is absent. */
export function samplingOptions(
  values: {
    max_new_tokens: string;
    temperature?: string | undefined;
    top_p: string;
    top_k: string;
    min_p: string;
    repeat_penalty: string;
    repeat_last_n: string;
    seed?: string | undefined;
  },
  temperature: number,
): GenerateOptions {
  return {
    maxNewTokens: parseInteger("max_new_tokens", values.max_new_tokens),
    temperature: parseNumber("temperature", values.temperature ?? String(temperature), 0),
    topP: parseNumber("top_p", values.top_p, 0, 1),
    topK: parseInteger("top_k", values.top_k, 0),
    minP: parseNumber("min_p", values.min_p, 0, 1),
    repeatPenalty: parseNumber("repeat_penalty", values.repeat_penalty, 0),
    repeatLastN: parseInteger("repeat_last_n", values.repeat_last_n, 0),
    ...(values.seed === undefined ? {} : { seed: parseInteger("seed", values.seed) }),
  };
}

/** The bundle's manifest and its tokenizer, or the one `--tokenizer` names. */
export async function openBundleTokenizer(
  bundle: string,
  tokenizerPath: string | undefined,
): Promise<{ manifest: BundleManifest; tokenizer: Tokenizer }> {
  await requirePermissions([readNeed(bundle, "read the bundle")]);
  const manifest = await readManifest(bundle);
  if (tokenizerPath === undefined && manifest.tokenizer === null) {
    throw new UsageError("The bundle has no tokenizer: pass --tokenizer");
  }
  const tokenizer = tokenizerPath === undefined
    ? readBundledTokenizer(bundle, manifest.tokenizer!)
    : await loadTokenizer(tokenizerPath);
  return { manifest, tokenizer };
}

/** The template `--chat_template` names, else the bundle's. */
export async function chatTemplateFor(
  bundle: string,
  manifest: BundleManifest,
  path: string | undefined,
): Promise<ChatTemplate> {
  if (path !== undefined) {
    await requirePermissions([readNeed(path, "read the chat template")]);
    return ChatTemplate.parse(await Deno.readTextFile(path), path);
  }
  const template = manifest.tokenizer === null
    ? undefined
    : readBundledChatTemplate(bundle, manifest.tokenizer);
  if (template === undefined) {
    throw new UsageError("The bundle has no chat template: pass --chat_template FILE");
  }
  return template;
}

/** The messages of a `--messages` file: a list of messages, or a request body that holds one. */
async function readConversation(path: string): Promise<ChatMessage[]> {
  await requirePermissions([readNeed(path, "read the conversation")]);
  let body: unknown;
  try {
    body = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new UsageError(`Invalid --messages file ${path}: ${error.message}`);
  }
  const list = Array.isArray(body) ? body : isJsonObject(body) ? body.messages : undefined;
  try {
    return parseMessages(Array.isArray(list) ? list : undefined);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    throw new UsageError(`Invalid --messages file ${path}: ${error.message}`);
  }
}

async function readAllStdin(): Promise<string> {
  // The newline that ends what was typed or echoed is not part of the message.
  return (await new Response(Deno.stdin.readable).text()).replace(/\r?\n$/, "");
}

/** `llamane run -m BUNDLE [--prompt TEXT] ...` */
export const runCommand: Command = {
  summary: "generate text from a bundle",
  usage: usage({
    command: "run",
    synopsis: ["-m BUNDLE [--prompt TEXT] [flags]"],
    description: "Streams the prompt's continuation to stdout, then a stats line to stderr.",
    flags,
    notes:
      "A prompt longer than the bundle's cache is accepted: the oldest tokens are evicted (a sliding window of the cache length plus one call), except the first 4 when the checkpoint was trained on a longer context than the cache.",
  }),

  async main(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.model === undefined) throw new UsageError("Missing --model");
    if (values.chat && values.lookahead) {
      throw new UsageError("--lookahead does not apply to --chat");
    }
    const selection = backendSelection(values.backend, values.compute_units);
    const options = {
      ...samplingOptions(values, values.lookahead ? 0 : GENERATE_DEFAULTS.temperature),
      ...(values.lookahead
        ? {
          lookahead: {
            ngramSize: parseInteger("ngram_size", values.ngram_size, 2),
            windowSize: parseInteger("window_size", values.window_size, 1),
            verifications: parseInteger("n_verifications", values.n_verifications, 0),
          },
        }
        : {}),
    };

    const { manifest, tokenizer } = await openBundleTokenizer(values.model, values.tokenizer);
    if (values.chat) {
      const template = await chatTemplateFor(values.model, manifest, values.chat_template);
      const conversation = values.messages === undefined
        ? undefined
        : await readConversation(values.messages);
      if (conversation !== undefined && values.system !== undefined) {
        throw new UsageError("--system does not apply to --messages: put it in the conversation");
      }
      const prompt = values.prompt === "-" ? await readAllStdin() : values.prompt;
      using model = await loadModel(values.model, selection);
      let generation;
      if (conversation === undefined) {
        const chat = new Chat(model, tokenizer, template, {
          ...options,
          ...(values.system === undefined ? {} : { system: values.system }),
        });
        generation = await chat.send(prompt);
      } else {
        const { ids } = await encodeConversation(model, tokenizer, template, conversation);
        generation = generate(model, tokenizer, ids, options);
      }
      for await (const { text } of generation) await writeText(text);
      await writeText("\n");
      console.error(formatStats(generation.stats));
      return;
    }

    using model = await loadModel(values.model, selection);
    const generation = generate(model, tokenizer, values.prompt, options);
    await writeText(values.prompt);
    const generated: number[] = [];
    for await (const { token, text } of generation) {
      if (token !== null) generated.push(token);
      await writeText(text);
    }
    await writeText("\n");
    console.error(formatStats(generation.stats));

    if (values.compare_eager !== undefined) {
      await requirePermissions([readNeed(values.compare_eager, "read the checkpoint")]);
      using source = await openCheckpoint(values.compare_eager);
      const eager = await EagerLlama.load(source, manifest.model);
      const bos = manifest.tokenizer?.addBos ?? tokenizer.addBos;
      const tokens = [...tokenizer.encode(values.prompt, { bos }), ...generated];
      const limit = manifest.export.cacheLen + 1;
      const result = await compareWithEager(model, eager, tokens.slice(0, limit));
      console.error(
        `eager comparison over ${result.positions} positions: max |logit difference| ` +
          `${result.maxAbsDifference.toExponential(3)}, top-1 agreement ${
            (100 * result.top1Agreement).toFixed(1)
          }%`,
      );
    }
  },
};
