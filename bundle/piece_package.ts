/**
 * A piece's `.mlpackage`, read from inside its bundle alone.
 *
 * @module
 */

import { type PackageContents, readPackage } from "../coreml/package.ts";
import { ConfinedDirectory, UnsafeFileError } from "../files/confined.ts";
import { BundleError, type PieceSpec } from "./manifest.ts";

/**
 * Reads the package of `piece`: its directory must resolve inside the bundle, and the package
 * reader keeps every file it reads inside the package.
 *
 * @throws {BundleError} when the package is missing or leaves the bundle
 * @throws {CoremlFormatError} when the package is malformed
 */
export function readPiecePackage(bundle: string, piece: PieceSpec): PackageContents {
  let path: string;
  try {
    path = ConfinedDirectory.open(bundle).resolve(piece.package, "directory");
  } catch (error) {
    if (!(error instanceof UnsafeFileError)) throw error;
    throw new BundleError(bundle, `the package "${error.path}" ${error.detail}`);
  }
  return readPackage(path);
}
