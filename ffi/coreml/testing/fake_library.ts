/**
 * Test support: builds testing/fake_coreml.c (a stand-in for the Core ML bridge that records its
 * calls) into a temporary directory with the system C compiler, and reads back what it recorded.
 *
 * @module
 */

/** The log of a loaded fake bridge. */
export interface FakeLog {
  /** The calls recorded since the last {@link FakeLog.reset}, one object per call. */
  calls(): FakeCall[];
  /** Forgets the recorded calls. */
  reset(): void;
}

/** A built fake bridge. */
export interface FakeLibrary extends FakeLog, AsyncDisposable {
  /** Path of the shared library, to pass as the bridge path. */
  readonly path: string;
}

/** One recorded call (fields as fake_coreml.c writes them). */
export interface FakeCall {
  readonly call: "open" | "bind" | "predict" | "close" | "compute_plan";
  readonly [field: string]: unknown;
}

/** One bound buffer as the fake saw it (a bind call's `tensor`, a predict call's lists). */
export interface FakeTensor {
  readonly name: string;
  readonly dtype: number;
  readonly shape: number[];
  /** The data pointer, in decimal. */
  readonly data: string;
  readonly bytes: number;
  /** In predict calls: the first (up to 4) bytes of the buffer at that moment, in hex. */
  readonly head?: string;
}

/** The bridge's ABI version, which the fake implements unless told otherwise. */
export const FAKE_ABI_VERSION = 3;

const source = new URL("./fake_coreml.c", import.meta.url);

/**
 * Compiles the fake with `cc` (gcc or clang). `abiVersion` makes it claim another ABI version.
 * Needs --allow-run=cc, read and write access to the temporary directory, and ffi for the result.
 */
export async function buildFakeLibrary(abiVersion = FAKE_ABI_VERSION): Promise<FakeLibrary> {
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
  return {
    path,
    ...openFakeLog(path),
    async [Symbol.asyncDispose]() {
      // The library stays mapped (Deno keeps the bindings' copy open); only the files go.
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Reads the log of the fake bridge at `path` through its test exports. The system loader maps a
 * library once per process, so this sees the calls the bindings made through their own
 * `Deno.dlopen` of the same path. Needs only `--allow-ffi=<path>`.
 */
export function openFakeLog(path: string): FakeLog {
  const log = Deno.dlopen(path, {
    fake_coreml_log: { parameters: ["buffer", "usize"], result: "usize" },
    fake_coreml_reset: { parameters: [], result: "void" },
  });
  return {
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
  };
}
