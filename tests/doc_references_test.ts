/**
 * Every document a source file, a script or a document names exists: comments that cite a
 * missing file are how text drifts away from the code.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

/** `.md` paths named in `text`, e.g. `docs/design.md` or `ABI.md`. */
export function citedDocuments(text: string): string[] {
  return [...text.matchAll(/(?<![\w./-])((?:\.{1,2}\/)*(?:[\w-]+\/)*[\w.-]+\.md)\b/g)].map((m) =>
    m[1]!
  );
}

/**
 * Whether `cited`, named in the repository file `from`, exists: as a path from the repository
 * root, from the folder of `from` or one of its ancestors (so a crate's sources may say `ABI.md`
 * for the crate's own), or from the folder a module binds (`ffi/coreml.ts` for `ffi/coreml/`).
 */
function exists(from: string, cited: string): boolean {
  const folders = from.split("/").slice(0, -1);
  const ancestors = folders.map((_, i) => folders.slice(0, i + 1).join("/"));
  const bases = ["", ...ancestors, from.replace(/\.\w+$/, "")];
  return bases.some((base) => {
    try {
      Deno.statSync(new URL(base === "" ? cited : `${base}/${cited}`, ROOT));
      return true;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      return false;
    }
  });
}

async function trackedFiles(): Promise<string[]> {
  const { stdout } = await new Deno.Command("git", {
    args: ["ls-files", "*.ts", "*.rs", "*.py", "*.sh", "*.c", "*.mjs", "*.md", "*.yml", "*.toml"],
    cwd: ROOT,
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(stdout).split("\n").filter((path) => path !== "");
}

Deno.test("every document the repository cites exists", async () => {
  const missing: string[] = [];
  const self = "tests/doc_references_test.ts"; // its examples of citations cite nothing
  for (const path of (await trackedFiles()).filter((path) => path !== self)) {
    const text = await Deno.readTextFile(new URL(path, ROOT));
    for (const cited of citedDocuments(text)) {
      if (!exists(path, cited)) missing.push(`${path} cites ${cited}`);
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("citations are found in comments, links and prose", () => {
  assert.deepEqual(
    citedDocuments("see (docs/reference/static-llm.md section 3), [x](../ABI.md) and PLAN.md."),
    ["docs/reference/static-llm.md", "../ABI.md", "PLAN.md"],
  );
});
