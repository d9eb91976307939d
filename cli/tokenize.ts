/**
 * `llamane tokenize`: encodes text to ids or decodes ids to text with a tokenizer file, for
 * debugging prompts.
 *
 * @module
 */

import { type FlagTable, parseFlags, parseInteger, usage, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { loadTokenizer } from "../tokenizer/load.ts";

const flags = {
  tokenizer: {
    type: "string",
    short: "t",
    value: "PATH",
    help: "tokenizer.model: SentencePiece (Llama 2) or tiktoken (Llama 3)",
  },
  bos: { type: "boolean", help: "prepend the beginning-of-sequence id" },
  eos: { type: "boolean", help: "append the end-of-sequence id" },
  special: {
    type: "boolean",
    help: "recognise special tokens written in TEXT, e.g. <|eot_id|> (tiktoken)",
  },
  decode: { type: "boolean", help: "decode the ids given as arguments" },
} as const satisfies FlagTable;

/** `llamane tokenize -t TOKENIZER [--bos] [--eos] [--special] TEXT...`, or `--decode ID...` */
export const tokenizeCommand: Command = {
  summary: "encode text to token ids, or decode ids to text",
  usage: usage({
    command: "tokenize",
    synopsis: ["-t TOKENIZER [--bos] [--eos] [--special] TEXT...", "-t TOKENIZER --decode ID..."],
    description:
      "Prints the ids of TEXT (the arguments joined by spaces) on one line, separated by spaces, or with --decode the text of the ids. Put -- before a TEXT that starts with a dash: everything after -- is TEXT, even --help.",
    flags,
  }),

  async main(argv) {
    const { values, positionals } = parseFlags(argv, flags, true);
    if (values.tokenizer === undefined) throw new UsageError("Missing --tokenizer");
    if (positionals.length === 0) {
      throw new UsageError(
        values.decode ? "Missing the ids to decode" : "Missing the TEXT to encode",
      );
    }
    if (values.decode && (values.bos || values.eos || values.special)) {
      throw new UsageError("--bos, --eos and --special apply to encoding, not to --decode");
    }
    // Ids are checked before the file is read, so a typo fails fast.
    const ids = values.decode ? positionals.map((id) => parseInteger("decode", id)) : [];
    const tokenizer = await loadTokenizer(values.tokenizer);
    if (values.decode) {
      console.log(tokenizer.decode(ids));
      return;
    }
    const encoded = tokenizer.encode(positionals.join(" "), {
      bos: values.bos,
      eos: values.eos,
      allowedSpecial: values.special ? "all" : [],
    });
    console.log(encoded.join(" "));
  },
};
