/**
 * Child of ffi/native_library_test.ts, run with `--v8-flags=--expose-gc`: opens two models on the
 * fake bridge at the path given as the first argument, disposes one, drops both, collects garbage,
 * and prints the calls the fake recorded as JSON.
 *
 * @module
 */

import { CoremlModel, openLibrary } from "../../coreml.ts";
import { openFakeLog } from "./fake_library.ts";

const path = Deno.args[0]!;
const log = openFakeLog(path);
const library = await openLibrary(path);
const open = (packagePath: string) =>
  CoremlModel.open(library, {
    packagePath,
    compiledPath: `${Deno.makeTempDirSync()}/m.mlmodelc`,
    functionName: "",
    computeUnits: "cpuOnly",
  });
await (async () => {
  (await open("/disposed.mlpackage"))[Symbol.dispose]();
  await open("/forgotten.mlpackage");
})();
const collect = (globalThis as unknown as { gc: () => void }).gc;
for (let i = 0; i < 20 && !log.calls().some((c) => c.call === "close" && c.model === 2); i++) {
  collect();
  await new Promise((resolve) => setTimeout(resolve, 10));
}
console.log(JSON.stringify(log.calls()));
