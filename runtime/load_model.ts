/**
 * `loadModel`: a bundle on the backend the options ask for.
 *
 * @module
 */

import { type BackendOptions, selectBackend } from "./backend/select.ts";
import { LoadedModel } from "./model.ts";

/**
 * Loads a bundle for generation on the backend `options` choose (by default Core ML on macOS when
 * its bridge is built, else the CPU backend). Needs read permission for the bundle and ffi
 * permission for the backend's native library; a missing one is reported with the flag to add.
 *
 * @example Load the demo bundle and look at its call length
 * ```ts ignore
 * import { loadModel } from "@llamane/llamane";
 * using model = await loadModel("out/kjv-tiny.llamane");
 * console.log(model.inputLength);
 * ```
 */
export async function loadModel(
  bundle: string,
  options: BackendOptions = {},
): Promise<LoadedModel> {
  return await LoadedModel.load(bundle, await selectBackend(options));
}
