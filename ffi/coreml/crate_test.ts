// Checks of the Core ML bridge crate that can run on Linux: its boundary checks run as Rust tests,
// and the Core ML code itself is type-checked (not linked: that needs the macOS SDK) against the
// objc2-core-ml bindings for macOS and iOS, with clippy enforcing a SAFETY comment on every
// unsafe block.
import assert from "node:assert/strict";

const crate = new URL("./", import.meta.url);
const manifest = decodeURIComponent(new URL("Cargo.toml", crate).pathname);
const APPLE_TARGETS = ["aarch64-apple-darwin", "aarch64-apple-ios"];

async function run(command: string, args: string[]): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await new Deno.Command(command, { args }).output();
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

const installed = await run("rustup", ["target", "list", "--installed"]).then(
  (r) => r.output.split("\n"),
  () => [] as string[],
);
const missing = APPLE_TARGETS.filter((t) => !installed.includes(t));

Deno.test("the bridge's boundary checks pass their Rust tests", async () => {
  const { code, output } = await run("cargo", [
    "test",
    "--locked",
    "--quiet",
    "--manifest-path",
    manifest,
  ]);
  assert.equal(code, 0, output);
});

Deno.test({
  name: `the bridge type-checks for ${APPLE_TARGETS.join(" and ")} with clippy clean ` +
    `(ignored without: rustup target add ${APPLE_TARGETS.join(" ")})`,
  ignore: missing.length > 0,
  async fn() {
    for (const target of APPLE_TARGETS) {
      // catch-objc-exceptions compiles Objective-C, which needs an Apple-capable C compiler.
      const { code, output } = await run("cargo", [
        "clippy",
        "--locked",
        "--quiet",
        "--manifest-path",
        manifest,
        "--target",
        target,
        "--no-default-features",
        "--",
        "-D",
        "warnings",
      ]);
      assert.equal(code, 0, `${target}:\n${output}`);
    }
  },
});

async function source(file: string): Promise<string[]> {
  return (await Deno.readTextFile(new URL(`src/${file}`, crate))).split("\n");
}

Deno.test("every unsafe block of the bridge is preceded by a SAFETY comment", async () => {
  for (const file of ["lib.rs", "abi.rs", "portable.rs", "bridge.rs"]) {
    const lines = await source(file);
    lines.forEach((line, i) => {
      if (!/\bunsafe \{/.test(line)) return;
      const before = lines.slice(Math.max(0, i - 4), i + 1).join("\n");
      assert.match(
        before,
        /SAFETY/,
        `${file}:${i + 1} has an unsafe block without a SAFETY comment`,
      );
    });
  }
});

Deno.test("the Core ML bridge stays under 440 lines, its Linux-tested parts under 160 and 120", async () => {
  // A small bridge is one that can be read whole. The budget is for the Core ML side, which
  // since ABI 3 also loads asynchronously under a timeout, recompiles a rejected cache entry and
  // reports underlying errors. What can run without Core ML lives apart and is tested on Linux:
  // src/abi.rs, the argument checks and the buffers bound to each handle; src/portable.rs, the
  // waits, error chains, cache publishing and strided copies around the Core ML calls.
  const bridge = (await source("lib.rs")).length + (await source("bridge.rs")).length;
  const checks = (await source("abi.rs")).length;
  const portable = (await source("portable.rs")).length;
  assert.ok(bridge < 440, `src/lib.rs + src/bridge.rs have ${bridge} lines`);
  assert.ok(checks < 160, `src/abi.rs has ${checks} lines`);
  assert.ok(portable < 120, `src/portable.rs has ${portable} lines`);
});
