/**
 * `llamane chat` as a user types into it: the CLI in a pseudo-terminal (util-linux `script`), its
 * input typed and then closed (Ctrl-D at the prompt), and the turns read back from the screen; and
 * the same conversation through the library, for comparison.
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

/** The turns a chat screen shows: each answer, and its stats line's prompt count. */
function screenTurns(screen: string): ScreenTurn[] {
  // Commands get a prompt of their own, so an answer follows the last of several.
  return [...screen.matchAll(/(?:> )+([\s\S]*?)\nprompt (\d+) tokens \|[^\n]*\n/g)]
    .map((match) => ({ answer: match[1]!, prefill: Number(match[2]) }));
}

/** `llamane chat` running in a pseudo-terminal, typed into as a user would. */
export class TerminalChat {
  readonly #child: Deno.ChildProcess;
  readonly #input: WritableStreamDefaultWriter<Uint8Array>;
  readonly #output: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #screen = "";

  /** Starts `llamane chat ...args`. */
  constructor(args: readonly string[]) {
    const chat = [Deno.execPath(), "run", "--quiet", `--config=${CONFIG}`, "-A", MAIN, "chat"]
      .concat(args).map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(" ");
    // The screen shows exactly what was written: no `\r` before each `\n`, no typed input echoed,
    // and nothing written discarded when Ctrl-C is typed.
    const command = `stty -onlcr -echo noflsh && exec ${chat}`;
    this.#child = new Deno.Command("script", {
      args: ["--quiet", "--flush", "--return", "--command", command, "/dev/null"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#input = this.#child.stdin.getWriter();
    this.#output = this.#child.stdout.getReader();
  }

  /** Everything the chat has written to the terminal so far. */
  get screen(): string {
    return this.#screen;
  }

  /** Types `text` (a line ends with `\n`; `\x03` is Ctrl-C). */
  async type(text: string): Promise<void> {
    await this.#input.write(new TextEncoder().encode(text));
  }

  /** Reads the screen until `done` holds for it; fails if the session ends first. */
  async waitFor(done: (screen: string) => boolean): Promise<void> {
    while (!done(this.screen)) {
      const { value, done: ended } = await this.#output.read();
      if (ended) throw new Error(`The chat ended before the awaited output:\n${this.screen}`);
      this.#screen += this.#decoder.decode(value, { stream: true });
    }
  }

  /** Closes the input (Ctrl-D at the prompt), reads the rest of the screen, and the exit code. */
  async close(): Promise<{ code: number; screen: string; turns: ScreenTurn[] }> {
    await this.#input.close();
    for (let read = await this.#output.read(); !read.done; read = await this.#output.read()) {
      this.#screen += this.#decoder.decode(read.value, { stream: true });
    }
    const { code } = await this.#child.status;
    await this.#child.stderr.cancel();
    return { code, screen: this.screen, turns: screenTurns(this.screen) };
  }
}

/** Runs `llamane chat ...args` in a pseudo-terminal with `lines` typed into it at once. */
export async function chatInTerminal(
  args: readonly string[],
  lines: readonly string[],
): Promise<{ code: number; screen: string; turns: ScreenTurn[] }> {
  const chat = new TerminalChat(args);
  await chat.type(lines.join("\n") + "\n");
  return await chat.close();
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
