/**
 * `loadModel`: a bundle on the backend the options ask for.
 *
 * @module
 */

import type { Backend } from "./backend/backend.ts";
import { selectBackend, type SelectBackendOptions } from "./backend/select.ts";
import { LoadedModel } from "./model.ts";

/** Options of {@link loadModel}: a backend instance, or how to choose one. */
export interface LoadModelOptions extends Omit<SelectBackendOptions, "os" | "backend"> {
  /**
   * `auto` (Core ML on macOS when its bridge is built, else the CPU backend), `cpu`, `coreml`, or
   * a backend instance.
   * @default "auto"
   */
  readonly backend?: SelectBackendOptions["backend"] | Backend;
}

/**
 * Loads a bundle for generation. Needs read permission for the bundle and ffi permission for the
 * backend's native library; a missing one is reported with the flag to add.
 *
 * @example Load the demo bundle and look at its manifest
 * ```ts ignore
 * import { loadModel } from "@llamane/llamane";
 * using model = await loadModel("out/kjv-tiny.llamane");
 * console.log(model.manifest.export.inputLen);
 * ```
 */
export async function loadModel(
  bundle: string,
  options: LoadModelOptions = {},
): Promise<LoadedModel> {
  const { backend, ...selection } = options;
  const instance = typeof backend === "object"
    ? backend
    : await selectBackend({ ...selection, ...(backend === undefined ? {} : { backend }) });
  return await LoadedModel.load(bundle, instance);
}
