/**
 * Bundles as files: the manifest and its checks, the names of every model input and output, and
 * {@link inspectBundle}'s report of what a bundle holds. For tools that read bundles; generating
 * from one goes through the top-level entry point.
 *
 * @example Read the demo bundle's manifest
 * ```ts ignore
 * import { readManifest } from "@llamane/llamane/bundle";
 * const manifest = await readManifest("out/kjv-tiny.llamane");
 * console.log(manifest.export.inputLen, manifest.export.cacheLen);
 * ```
 *
 * @module
 */

export {
  BUNDLE_FORMAT,
  BUNDLE_FORMAT_VERSION,
  BundleError,
  type BundleManifest,
  checkManifest,
  type ExportSpec,
  type FunctionSpec,
  type IoSpec,
  MANIFEST_FILE,
  type PieceSpec,
  readManifest,
  type TokenizerSpec,
} from "./manifest.ts";
export {
  FREQS_COS,
  FREQS_SIN,
  hidden,
  IO_CONTRACT_VERSION,
  kCache,
  kNew,
  LAST_VALID_TOKEN_POS,
  LOGITS,
  MASK,
  shapeForCall,
  TOKENS,
  vCache,
  vNew,
} from "./io_names.ts";
export {
  type BundleReport,
  type FunctionReport,
  inspectBundle,
  type PieceReport,
} from "./inspect.ts";
export { readBundledChatTemplate, readBundledTokenizer } from "./tokenizer.ts";
