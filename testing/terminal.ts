/**
 * `llamane chat` as a user types into it: the CLI in a pseudo-terminal (util-linux `script`), its
 * input written at once and then closed (Ctrl-D at the prompt), and the turns read back from the
 * screen; and the same conversation through the library, for comparison.
 *
 * @module
 */

import { readBundledChatTemplate, readBundledTokenizer, readManifest } from "../bundle/mod.ts";
import { Chat } from "../runtime/chat.ts";
import { generate } from "../runtime/generate.ts";
import { loadModel } from "../runtime/load_model.ts";
import { encodeChat } from "../tokenizer/mod.ts";

const MAIN = new URL("../cli/main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** One answered turn as the screen shows it. */
export interface ScreenTurn {
  readonly answer: string;
  /** The stats line's prompt count: what the turn prefilled. */
  readonly prefill: number;
}

/** Runs `llamane chat ...args` in a pseudo-terminal with `lines` typed into it. */
export async function chatInTerminal(
  args: readonly string[],
  lines: readonly string[],
): Promise<{ code: number; screen: string; turns: ScreenTurn[] }> {
  const command = [Deno.execPath(), "run", "--quiet", `--config=${CONFIG}`, "-A", MAIN, "chat"]
    .concat(args).map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(" ");
  const child = new Deno.Command("script", {
    args: ["--quiet", "--flush", "--return", "--command", command, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(lines.join("\n") + "\n"));
  // Closing the input is Ctrl-D at the prompt: the session ends.
  await writer.close();
  const { code, stdout } = await child.output();
  const screen = new TextDecoder().decode(stdout).replaceAll("\r\n", "\n");
  // Commands get a prompt of their own, so an answer follows the last of several.
  const turns = [...screen.matchAll(/(?:> )+([\s\S]*?)\nprompt (\d+) tokens \|[^\n]*\n/g)]
    .map((match) => ({ answer: match[1]!, prefill: Number(match[2]) }));
  return { code, screen, turns };
}

/** One turn through the library: the chat's answer and prefill, and a fresh run's answer. */
export interface LibraryTurn {
  readonly answer: string;
  readonly prefill: number;
  /** The answer of a fresh generation from the whole conversation's ids. */
  readonly fresh: string;
  /** Ids of the whole conversation up to this turn's answer. */
  readonly whole: number;
}

/** The conversation of `messages` (after `system`, if given) through the library, greedy, on the CPU. */
export async function chatInLibrary(
  bundle: string,
  messages: readonly string[],
  maxNewTokens: number,
  system?: string,
): Promise<LibraryTurn[]> {
  const manifest = await readManifest(bundle);
  const tokenizer = readBundledTokenizer(bundle, manifest.tokenizer!);
  const template = readBundledChatTemplate(bundle, manifest.tokenizer!)!;
  using model = await loadModel(bundle, { backend: "cpu" });
  const options = { temperature: 0, maxNewTokens };
  const chat = new Chat(model, tokenizer, template, {
    ...options,
    ...(system === undefined ? {} : { system }),
  });
  const special = (id: number | null) => id === null ? undefined : tokenizer.decode([id]);
  const turns: LibraryTurn[] = [];
  for (const message of messages) {
    const bosToken = special(manifest.tokenizer!.bosId);
    const eosToken = special(manifest.tokenizer!.eosId);
    const { ids } = await encodeChat(tokenizer, template, {
      messages: [...chat.messages, { role: "user", content: message }],
      ...(bosToken === undefined ? {} : { bosToken }),
      ...(eosToken === undefined ? {} : { eosToken }),
    });
    let fresh = "";
    for await (const { text } of generate(model, tokenizer, ids, options)) fresh += text;
    const generation = await chat.send(message);
    let answer = "";
    for await (const { text } of generation) answer += text;
    turns.push({ answer, prefill: generation.stats.promptTokens, fresh, whole: ids.length });
  }
  return turns;
}
