/**
 * Runs a bundle through the Core ML backend's TypeScript (`runtime/backend/coreml.ts`,
 * `ffi/coreml.ts`, `runtime/backend/compute_plan.ts`) on the bridge at LIB and prints what happened as one
 * JSON object. `scoped_ffi_test.ts` runs it on the fake bridge with `--allow-ffi=LIB` and no other
 * ffi permission, which is how llamane must run: Deno then refuses every pointer operation
 * (`Deno.UnsafePointer.of`, `.value`, `.create`), so this only works if nothing needs them.
 *
 * Usage: deno run --allow-ffi=LIB --allow-read=BUNDLE --allow-write=CACHE scoped_ffi_child.ts
 *   LIB BUNDLE CACHE
 *
 * @module
 */

import { CoremlBackend } from "../../../runtime/backend/coreml.ts";
import { LoadedModel } from "../../../runtime/model.ts";
import { ModelSession } from "../../../runtime/session.ts";
import { computePlanReport } from "../../../runtime/backend/compute_plan.ts";
import { openFakeLog } from "./fake_library.ts";

/** What the child reports. */
export interface ScopedRunReport {
  /** Whether Deno refused `Deno.UnsafePointer.of` here: the run proves something only if so. */
  readonly pointersRefused: boolean;
  /** The state of blanket ffi permission (not `granted` when only the library is allowed). */
  readonly blanketFfi: Deno.PermissionState;
  /** The distinct values of each step's logits row (the fake writes constants). */
  readonly logits: number[][];
  /** Operations per function in the compute plan report. */
  readonly planned: number[];
  /** The calls the fake bridge recorded, in order. */
  readonly calls: { readonly call: string; readonly [field: string]: unknown }[];
}

async function main([library, bundle, cacheDir]: string[]): Promise<ScopedRunReport> {
  if (library === undefined || bundle === undefined || cacheDir === undefined) {
    throw new TypeError("Usage: scoped_ffi_child.ts LIB BUNDLE CACHE");
  }
  let pointersRefused = false;
  try {
    Deno.UnsafePointer.of(new Uint8Array(8));
  } catch (error) {
    pointersRefused = error instanceof Deno.errors.NotCapable;
  }
  const blanketFfi = (await Deno.permissions.query({ name: "ffi" })).state;
  using backend = await CoremlBackend.create({ library, cacheDir });
  const logits: number[][] = [];
  {
    using model = await LoadedModel.load(bundle, backend);
    const session = new ModelSession(model);
    for (const tokens of [[1, 2, 3], [4], [5]]) {
      logits.push([...new Set(await session.step(tokens))]);
    }
  } // disposed: each handle closes once its queued calls are done
  const report = await computePlanReport(bundle, { library, cacheDir });
  const planned = report.functions.map((f) => Object.values(f.counts).reduce((a, b) => a + b, 0));
  return { pointersRefused, blanketFfi, logits, planned, calls: openFakeLog(library).calls() };
}

if (import.meta.main) console.log(JSON.stringify(await main(Deno.args)));
