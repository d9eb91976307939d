/**
 * Scratch folders for test modules whose files outlive a single test: removed when the module
 * unloads, whether its tests passed or not.
 *
 * @module
 */

/** A new empty temporary folder, removed with everything in it when the test module unloads. */
export async function scratchDir(prefix = "llamane-test-"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return dir;
}
