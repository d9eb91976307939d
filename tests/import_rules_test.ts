/**
 * The import rules of the repository's layout, drawn in the README: data flows one way, from the
 * file formats (checkpoint/, tokenizer/, coreml/) through the model (llama/) and the bundle
 * (bundle/) to the two sides that use them (export/, runtime/), which never import each other,
 * then the server over the runtime (serve/), and on to the edges (cli/, mod.ts). Test code, benches and scripts may import anything.
 *
 * @module
 */

import assert from "node:assert/strict";

/** Root files of plain helpers that import nothing and that every layer may import. */
const SHARED_HELPERS: readonly string[] = ["shape.ts"];

/** What the edges (the command line and the package's entry point) may import: every layer. */
const EDGE_IMPORTS: readonly string[] = [
  "files",
  "checkpoint",
  "tokenizer",
  "coreml",
  "llama",
  "bundle",
  "export",
  "ffi",
  "runtime",
  "serve",
  "models",
  "permissions.ts",
  "version.ts",
];

/** Top-level folders (or root files) each layer may import, besides itself and the helpers. */
const ALLOWED_IMPORTS: Readonly<Record<string, readonly string[]>> = {
  "shape.ts": [],
  "permissions.ts": [],
  "version.ts": ["deno.json"],
  protobuf: [],
  // The GGUF container: checkpoint/ reads its tensors, and tokenizer/ may read its vocabulary.
  gguf: ["files"],
  files: [],
  models: ["permissions.ts"],
  checkpoint: ["gguf", "files", "permissions.ts"],
  tokenizer: ["protobuf", "gguf", "files", "permissions.ts"],
  coreml: ["protobuf", "files"],
  llama: ["checkpoint", "files", "permissions.ts"],
  bundle: ["coreml", "llama", "tokenizer", "files", "permissions.ts"],
  export: [
    "checkpoint",
    "llama",
    "tokenizer",
    "coreml",
    "bundle",
    "files",
    "permissions.ts",
    "version.ts",
  ],
  ffi: ["coreml", "permissions.ts", "version.ts"],
  runtime: ["bundle", "coreml", "llama", "tokenizer", "ffi", "files", "permissions.ts"],
  // The HTTP server: it loads a bundle and answers requests through the runtime.
  serve: ["bundle", "tokenizer", "runtime"],
  cli: EDGE_IMPORTS,
  "mod.ts": EDGE_IMPORTS,
  // Scripts users copy: they import the package by its name, never a repository path.
  examples: [],
};

/** Code that exists only to test, measure or build: it may reach into any layer. */
function isSupportCode(path: string): boolean {
  return /(^|\/)(bench|scripts|testing|tests|testdata|\.github)\//.test(path) ||
    /_test\.ts$|_testing\.ts$/.test(path) || path.startsWith("ffi/cpu/tests/");
}

/** One module and the repository paths it imports. */
export interface ModuleImports {
  readonly path: string;
  readonly imports: readonly string[];
}

/** The layer a repository path belongs to: its top-level folder, or the root file itself. */
function layerOf(path: string): string {
  return path.split("/")[0]!;
}

/** Joins a relative specifier to the folder of `from`, as a repository path. */
function resolveSpecifier(from: string, specifier: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

/** Removes comments, so that import lines inside documentation examples are not counted. */
function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/** The relative imports and re-exports of one module, static and dynamic. */
export function importsOf(path: string, source: string): ModuleImports {
  const pattern = /(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;
  const imports = [...stripComments(source).matchAll(pattern)].map((m) =>
    resolveSpecifier(path, m[1]!)
  );
  return { path, imports };
}

/** Every import that breaks the layer rules or closes a cycle, as readable lines. */
export function importViolations(modules: readonly ModuleImports[]): string[] {
  const found: string[] = [];
  for (const { path, imports } of modules) {
    if (isSupportCode(path)) continue;
    const layer = layerOf(path);
    const allowed = ALLOWED_IMPORTS[layer];
    if (allowed === undefined) {
      found.push(`${path}: ${layer} is not a known layer (add it to ALLOWED_IMPORTS)`);
      continue;
    }
    for (const target of imports) {
      const to = layerOf(target);
      if (to === layer || allowed.includes(to) || SHARED_HELPERS.includes(to)) continue;
      found.push(`${path} imports ${target}`);
    }
  }
  return [...found, ...importCycles(modules.filter((m) => !isSupportCode(m.path)))];
}

/** Import cycles between modules (Tarjan's strongly connected components). */
function importCycles(modules: readonly ModuleImports[]): string[] {
  const graph = new Map(modules.map((m) => [m.path, m.imports]));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      component.push(w);
    } while (w !== v);
    if (component.length > 1) cycles.push(`import cycle: ${component.sort().join(" <-> ")}`);
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

async function repositoryModules(): Promise<ModuleImports[]> {
  const root = new URL("../", import.meta.url);
  const modules: ModuleImports[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(new URL(dir, root))) {
      const path = dir === "" ? entry.name : `${dir}${entry.name}`;
      if (entry.isDirectory) {
        if (!["node_modules", "target", ".venv", ".git", "out"].includes(entry.name)) {
          await walk(`${path}/`);
        }
      } else if (entry.isFile && path.endsWith(".ts")) {
        modules.push(importsOf(path, await Deno.readTextFile(new URL(path, root))));
      }
    }
  };
  await walk("");
  return modules;
}

Deno.test("imports follow the layout's one-way rules and form no cycle", async () => {
  assert.deepEqual(importViolations(await repositoryModules()), []);
});

Deno.test("an import against the flow is reported", () => {
  const violations = importViolations([
    { path: "runtime/backend/cpu.ts", imports: ["export/export_model.ts"] },
    { path: "coreml/package.ts", imports: ["export/options.ts"] },
    { path: "runtime/backend/cpu_test.ts", imports: ["export/export_model.ts"] },
  ]);
  assert.deepEqual(violations, [
    "runtime/backend/cpu.ts imports export/export_model.ts",
    "coreml/package.ts imports export/options.ts",
  ]);
});

Deno.test("a cycle is reported, and imports in comments are not imports", () => {
  const a = importsOf(
    "runtime/a.ts",
    'import { b } from "./b.ts";\n/** import { x } from "../export/x.ts"; */',
  );
  const b = importsOf("runtime/b.ts", 'export { a } from "./a.ts";');
  assert.deepEqual(a.imports, ["runtime/b.ts"]);
  assert.deepEqual(importViolations([a, b]), ["import cycle: runtime/a.ts <-> runtime/b.ts"]);
});

Deno.test("a new top-level folder must be given its place", () => {
  assert.deepEqual(importViolations([{ path: "plugins/loader.ts", imports: [] }]), [
    "plugins/loader.ts: plugins is not a known layer (add it to ALLOWED_IMPORTS)",
  ]);
});
