/**
 * MIL identifiers: value, op, function, parameter and attribute names. MIL.proto allows
 * `[A-Za-z_][A-Za-z0-9_@]*`; coremltools' sanitizer is stricter and renames its reserved words,
 * and we follow the stricter rule so that coremltools round-trips our names unchanged.
 *
 * @module
 */

import { MilProgramError } from "./errors.ts";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Words coremltools' sanitizer renames (appending `_workaround`), so we never use them. */
export const RESERVED_WORDS: ReadonlySet<string> = new Set([
  "any",
  "bool",
  "program",
  "func",
  "tensor",
  "list",
  "dict",
  "tuple",
  "true",
  "false",
  "string",
  "bf16",
  "fp16",
  "fp32",
  "fp64",
  "int8",
  "int16",
  "int32",
  "int64",
  "uint8",
  "uint16",
  "uint32",
  "uint64",
  "state",
]);

/**
 * Throws unless `name` is a valid, non-reserved MIL identifier.
 *
 * @param what completes "Cannot name ...", e.g. `the value of op "lin"`
 * @throws {MilProgramError} naming the rule that was broken
 */
export function checkIdentifier(
  name: string,
  what: string,
  where: { functionName?: string; operationIndex?: number } = {},
): void {
  if (RESERVED_WORDS.has(name)) {
    throw new MilProgramError(
      `Cannot name ${what} "${name}": it is a reserved word in MIL, choose another name`,
      where,
    );
  }
  if (!IDENTIFIER.test(name)) {
    throw new MilProgramError(
      `Cannot name ${what} "${name}": identifiers must match [A-Za-z_][A-Za-z0-9_]*`,
      where,
    );
  }
}
