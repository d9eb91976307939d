/**
 * llama.cpp through node-llama-cpp (bench/peer, pinned by its package-lock.json): installed on
 * first use, then run by Node for the benchmark's timings and as the tokenizer oracle of GGUF
 * vocabularies.
 *
 * @module
 */

const PEER = new URL("../bench/peer/", import.meta.url);

async function sha256(path: URL): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * `npm ci` of the pinned peer unless node_modules was installed from this very lock file.
 * `--omit=optional` skips node-llama-cpp's other prebuilt packages (CUDA alone is 540 MB): the
 * linux-x64 CPU one is a direct dependency, so it stays. `--ignore-scripts`: no postinstall tries
 * a download or a source build.
 */
export async function ensurePeer(): Promise<void> {
  const stamp = new URL("node_modules/.llamane-lock.sha256", PEER);
  const want = await sha256(new URL("package-lock.json", PEER));
  const have = await Deno.readTextFile(stamp).catch(() => undefined);
  if (have === want) return;
  console.log("installing the llama.cpp peer: npm ci in bench/peer");
  const { success, code } = await new Deno.Command("npm", {
    args: ["ci", "--omit=optional", "--ignore-scripts", "--no-audit", "--no-fund"],
    cwd: PEER,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`npm ci in bench/peer failed with exit code ${code}`);
  await Deno.writeTextFile(stamp, want);
}

/** llama.cpp's ids of each text (bench/peer/tokenize.mjs), loading only the GGUF's vocabulary. */
export async function llamaCppTokenize(
  model: string,
  texts: readonly string[],
): Promise<{ plain: number[]; special: number[] }[]> {
  await ensurePeer();
  const child = new Deno.Command("node", {
    args: [new URL("tokenize.mjs", PEER).pathname],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify({ model, texts })));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  const text = new TextDecoder();
  if (!success) throw new Error(`bench/peer/tokenize.mjs failed:\n${text.decode(stderr)}`);
  return JSON.parse(text.decode(stdout));
}
