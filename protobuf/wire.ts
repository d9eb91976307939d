/**
 * The protobuf wire codec of `@bufbuild/protobuf`, pinned here by its full npm specifier, so that
 * the modules using it load the same way from a clone, a URL, JSR or `deno install`, none of which
 * share this repository's import map.
 *
 * @module
 */

export { BinaryReader, BinaryWriter, WireType } from "npm:@bufbuild/protobuf@2.17.0/wire";
