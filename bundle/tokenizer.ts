/**
 * The tokenizer and chat template a bundle carries, read from inside the bundle alone.
 *
 * @module
 */

import { ConfinedDirectory, UnsafeFileError } from "../files/confined.ts";
import { ChatTemplate } from "../tokenizer/chat/chat_template.ts";
import { MAX_TOKENIZER_BYTES, parseTokenizer } from "../tokenizer/mod.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { BundleError, type TokenizerSpec } from "./manifest.ts";

/**
 * Reads the bundled tokenizer the manifest names. The file must be a regular file inside the
 * bundle and of the kind the manifest says.
 *
 * @throws {BundleError} when the file is missing, leaves the bundle, or is of another kind
 * @throws {TokenizerFormatError} when the file is not a valid tokenizer
 */
export function readBundledTokenizer(bundle: string, spec: TokenizerSpec): Tokenizer {
  let bytes: Uint8Array;
  try {
    bytes = ConfinedDirectory.open(bundle).read(spec.file, MAX_TOKENIZER_BYTES);
  } catch (error) {
    if (!(error instanceof UnsafeFileError)) throw error;
    throw new BundleError(bundle, `its tokenizer "${error.path}" ${error.detail}`);
  }
  const tokenizer = parseTokenizer(bytes, { name: `${bundle}/${spec.file}` });
  if (tokenizer.kind !== spec.kind) {
    throw new BundleError(
      bundle,
      `its tokenizer "${spec.file}" is a ${tokenizer.kind} model, the manifest says ${spec.kind}`,
    );
  }
  return tokenizer;
}

/** Largest chat template read from a bundle. */
const MAX_TEMPLATE_BYTES = 4 * 2 ** 20;

/**
 * Reads the bundled chat template the manifest names, or undefined when the bundle has none.
 *
 * @throws {BundleError} when the file is missing or leaves the bundle
 * @throws {ChatTemplateError} when the template does not parse
 */
export function readBundledChatTemplate(
  bundle: string,
  spec: TokenizerSpec,
): ChatTemplate | undefined {
  if (spec.chatTemplate === null) return undefined;
  let source: string;
  try {
    source = ConfinedDirectory.open(bundle).readText(spec.chatTemplate, MAX_TEMPLATE_BYTES);
  } catch (error) {
    if (!(error instanceof UnsafeFileError)) throw error;
    throw new BundleError(bundle, `its chat template "${error.path}" ${error.detail}`);
  }
  return ChatTemplate.parse(source, `${bundle}/${spec.chatTemplate}`);
}
