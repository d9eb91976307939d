/**
 * Every entry point deno.json publishes is one whose documentation `deno task check` lints, so an
 * entry added later cannot ship undocumented names.
 */

import assert from "node:assert/strict";
import config from "../deno.json" with { type: "json" };

Deno.test("deno task check lints the documentation of every published entry point", () => {
  const lint = / deno doc --lint ([^&]+)/.exec(config.tasks.check.command);
  assert.ok(lint !== null, "the check task runs deno doc --lint");
  const linted = new Set(lint[1]!.trim().split(/\s+/).map((path) => `./${path}`));
  const missing = Object.values(config.exports).filter((path) => !linted.has(path));
  assert.deepEqual(missing, []);
});
