import assert from "node:assert/strict";
import { buildFakeLibrary, type FakeCall } from "./coreml/testing/fake_library.ts";

Deno.test("a handle nobody disposed is freed once its owner is collected; a disposed one only once", async () => {
  await using fake = await buildFakeLibrary();
  const child = new URL("./coreml/testing/collected_child.ts", import.meta.url);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--v8-flags=--expose-gc", child.pathname, fake.path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  assert.equal(code, 0, text.decode(stderr));
  const calls = JSON.parse(text.decode(stdout)) as FakeCall[];
  assert.deepEqual(calls.filter((c) => c.call === "open").map((c) => c.package), [
    "/disposed.mlpackage",
    "/forgotten.mlpackage",
  ]);
  // Model 1 was disposed, model 2 only dropped: each is closed exactly once.
  assert.deepEqual(calls.filter((c) => c.call === "close").map((c) => c.model), [1, 2]);
});
