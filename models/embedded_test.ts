import assert from "node:assert/strict";
import { embeddedModel } from "./embedded.ts";

const MODEL = new URL("./kjv-tiny/", import.meta.url);

Deno.test("embeddedModel() gives a local copy's files in place, and disposing keeps them", async () => {
  const paths = await (async () => {
    await using model = await embeddedModel();
    return { checkpoint: model.checkpoint, params: model.params, tokenizer: model.tokenizer };
  })();
  assert.deepEqual(
    await Deno.readFile(paths.checkpoint),
    await Deno.readFile(new URL("consolidated.00.pth", MODEL)),
  );
  assert.deepEqual(
    JSON.parse(await Deno.readTextFile(paths.params)),
    JSON.parse(await Deno.readTextFile(new URL("params.json", MODEL))),
  );
  assert.equal(paths.tokenizer.replace(/[^/\\]+$/, ""), paths.checkpoint.replace(/[^/\\]+$/, ""));
  assert.ok((await Deno.stat(paths.tokenizer)).isFile);
});

Deno.test({
  name: "embeddedModel() names the read permission it lacks",
  permissions: { read: false },
  async fn() {
    await assert.rejects(
      embeddedModel(),
      /Cannot read the embedded model: permission denied, run with --allow-read=.*models\/kjv-tiny/,
    );
  },
});
