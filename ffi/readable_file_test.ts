import assert from "node:assert/strict";
import { findLibrary } from "./cpu.ts";

const built = new URL("./cpu/target/release/", import.meta.url).pathname;

Deno.test({
  name: "findLibrary() names the read permission a present library lacks, not a build",
  permissions: { read: false, env: false },
  async fn() {
    await assert.rejects(findLibrary(), (error: Error) => {
      assert.match(error.message, /Cannot find the CPU backend library/);
      assert.match(error.message, new RegExp(`not readable: run with --allow-read=${built}`));
      return true;
    });
  },
});

Deno.test({
  name: "findLibrary() says a library is missing when it may look and finds nothing",
  permissions: { read: true, env: false },
  async fn() {
    const path = `${built}no-such-library.so`;
    await assert.rejects(findLibrary(path), new RegExp(`"${path}" \\(no such file\\)`));
  },
});
