import assert from "node:assert/strict";
import { findLibrary, NativeError, NativeWeights, openLibrary } from "./cpu.ts";

Deno.test("the library Deno loads carries no test hooks", async () => {
  const path = await findLibrary();
  assert.throws(
    () => Deno.dlopen(path, { llamane_linear: { parameters: [], result: "i32" } }),
    /llamane_linear/,
  );
});

Deno.test("a failed call reports the library's message from its own error buffer", async () => {
  const library = await openLibrary();
  const error = (() => {
    try {
      NativeWeights.open(library, "/nonexistent/weight.bin");
    } catch (e) {
      return e;
    }
  })();
  assert.ok(error instanceof NativeError, String(error));
  assert.match(
    error.message,
    /^Cannot map "\/nonexistent\/weight.bin": .*\/nonexistent\/weight.bin/,
  );
  using weights = NativeWeights.open(
    library,
    decodeURIComponent(
      new URL("cpu/tests/data/tiny_c4w/head.weight.bin", import.meta.url).pathname,
    ),
  );
  assert.throws(
    () => weights.plan("{}"),
    /^NativeError: Cannot load an execution plan: cannot load the execution plan: /,
  );
});
