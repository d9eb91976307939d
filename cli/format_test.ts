import assert from "node:assert/strict";
import { printable } from "./format.ts";

Deno.test("printable() escapes control characters a hostile file could send to the terminal", () => {
  assert.equal(printable('op "a\u001b]0;owned\u0007b"'), 'op "a\\u001b]0;owned\\u0007b"');
  assert.equal(printable("\u009b2J\r"), "\\u009b2J\\u000d");
  assert.equal(printable("two\nlines\tand é, 日本"), "two\nlines\tand é, 日本");
});
