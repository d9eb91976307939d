/**
 * Test support: builds testing/fake_coreml.c (a stand-in for the Core ML bridge that records its
 * calls) into a temporary directory with the system C compiler, and reads back what it recorded.
 *
 * @module
 */

/** A built fake bridge. */
export interface FakeLibrary extends AsyncDisposable {
  /** Path of the shared library, to pass as the bridge path. */
  readonly path: string;
  /** The calls recorded since the last {@link FakeLibrary.reset}, one object per call. */
  calls(): FakeCall[];
  /** Forgets the recorded calls. */
  reset(): void;
}

/** One recorded call (fields as fake_coreml.c writes them). */
export interface FakeCall {
  readonly call: "open" | "predict" | "close" | "compute_plan";
  readonly [field: string]: unknown;
}

/** One tensor record as the fake saw it. */
export interface FakeTensor {
  readonly name: string;
  readonly dtype: number;
  readonly shape: number[];
  /** The data pointer, in decimal. */
  readonly data: string;
  readonly bytes: number;
  /** The first (up to 4) bytes of the buffer, in hex. */
  readonly head: string;
}

const source = new URL("./fake_coreml.c", import.meta.url);

/**
 * Compiles the fake with `cc` (gcc or clang). `abiVersion` makes it claim another ABI version.
 * Needs --allow-run=cc, read and write access to the temporary directory, and ffi for the result.
 */
export async function buildFakeLibrary(abiVersion = 1): Promise<FakeLibrary> {
  const dir = await Deno.makeTempDir({ prefix: "llamane_fake_coreml_" });
  const path = `${dir}/libfake_coreml.so`;
  const { code, stderr } = await new Deno.Command("cc", {
    args: [
      "-shared",
      "-fPIC",
      "-O1",
      "-Wall",
      "-Werror",
      `-DFAKE_ABI_VERSION=${abiVersion}`,
      "-o",
      path,
      decodeURIComponent(source.pathname),
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `Cannot build the fake Core ML bridge: cc said ${new TextDecoder().decode(stderr)}`,
    );
  }
  const log = Deno.dlopen(path, {
    fake_coreml_log: { parameters: ["buffer", "usize"], result: "usize" },
    fake_coreml_reset: { parameters: [], result: "void" },
  });
  return {
    path,
    calls() {
      const length = Number(log.symbols.fake_coreml_log(null, 0n));
      const bytes = new Uint8Array(length);
      log.symbols.fake_coreml_log(bytes, BigInt(length));
      return new TextDecoder().decode(bytes).split("\n").filter((l) => l !== "").map((l) =>
        JSON.parse(l) as FakeCall
      );
    },
    reset() {
      log.symbols.fake_coreml_reset();
    },
    async [Symbol.asyncDispose]() {
      // The library stays mapped (Deno keeps the bindings' copy open); only the files go.
      await Deno.remove(dir, { recursive: true });
    },
  };
}
