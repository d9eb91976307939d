/**
 * The entry points deno.json publishes: each one's documentation is linted by `deno task check`,
 * so an entry added later cannot ship undocumented names, and each name has one entry point, so
 * the top level stays the short list a user needs and the parts live beside their layer.
 */

import assert from "node:assert/strict";
import config from "../deno.json" with { type: "json" };
import { REPOSITORY_ROOT } from "../testing/file_server.ts";

Deno.test("deno task check lints the documentation of every published entry point", () => {
  const lint = / deno doc --lint ([^&]+)/.exec(config.tasks.check.command);
  assert.ok(lint !== null, "the check task runs deno doc --lint");
  const linted = new Set(lint[1]!.trim().split(/\s+/).map((path) => `./${path}`));
  const missing = Object.values(config.exports).filter((path) => !linted.has(path));
  assert.deepEqual(missing, []);
});

/** The names the module at `path` exports, as `deno doc` lists them. */
async function exportedNames(path: string): Promise<string[]> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", path],
    cwd: REPOSITORY_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const doc = JSON.parse(new TextDecoder().decode(stdout));
  const [module] = Object.values(doc.nodes) as { symbols: { name: string }[] }[];
  return module!.symbols.map((symbol) => symbol.name);
}

/** Names exported by more than one of `entries`, each with the entry points exporting it. */
export function sharedNames(entries: Readonly<Record<string, readonly string[]>>): string[] {
  const owners = new Map<string, string[]>();
  for (const [entry, names] of Object.entries(entries)) {
    for (const name of new Set(names)) owners.set(name, [...owners.get(name) ?? [], entry]);
  }
  return [...owners].filter(([, entries]) => entries.length > 1)
    .map(([name, entries]) => `${name}: ${entries.join(", ")}`);
}

Deno.test("no name is exported by two entry points", async () => {
  const entries: Record<string, string[]> = {};
  for (const [entry, path] of Object.entries(config.exports)) {
    entries[entry] = await exportedNames(path);
  }
  assert.ok(entries["."]!.includes("exportModel"), "deno doc lists the top level's names");
  assert.deepEqual(sharedNames(entries), []);
});

Deno.test("a name exported twice is reported with both entry points", () => {
  assert.deepEqual(
    sharedNames({ ".": ["loadModel", "Chat"], "./runtime": ["ModelSession", "loadModel"] }),
    ["loadModel: ., ./runtime"],
  );
});
