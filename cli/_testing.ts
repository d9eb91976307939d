/**
 * Runs the CLI as users do, in a subprocess with exactly the permissions a test grants.
 *
 * @module
 */

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** Exit code and output of one CLI run. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `llamane ...args` with exactly the given permission flags. */
export async function llamane(
  permissions: readonly string[],
  ...args: string[]
): Promise<CliResult> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", `--config=${CONFIG}`, ...permissions, MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

/**
 * What `llamane run --chat --messages` answers to each turn of a conversation, given all of it up
 * to that turn's user message: the answers a chat that kept its cache must equal.
 */
export async function freshChatAnswers(
  bundle: string,
  messages: readonly string[],
  answers: readonly string[],
  flags: readonly string[],
): Promise<string[]> {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const fresh: string[] = [];
    for (const [turn, message] of messages.entries()) {
      const conversation = messages.slice(0, turn).flatMap((content, i) => [
        { role: "user", content },
        { role: "assistant", content: answers[i] },
      ]);
      conversation.push({ role: "user", content: message });
      await Deno.writeTextFile(file, JSON.stringify(conversation));
      const run = await llamane(
        ["-A"],
        "run",
        "-m",
        bundle,
        "--chat",
        "--messages",
        file,
        ...flags,
      );
      if (run.code !== 0) throw new Error(`llamane run --chat --messages failed:\n${run.stderr}`);
      // run ends the answer with a newline.
      fresh.push(run.stdout.slice(0, -1));
    }
    return fresh;
  } finally {
    await Deno.remove(file);
  }
}
