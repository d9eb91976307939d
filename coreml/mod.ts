/**
 * Core ML files for llamane: an in-memory MIL program IR and a builder for it, the
 * model.mlmodel protobuf writer and reader, weight.bin blob storage, and `.mlpackage`
 * directories. The reader is safe on hostile input and returns the IR the writer takes, so the
 * CPU backend loads exactly what the exporter wrote.
 *
 * @example Export a tiny program and read it back
 * ```ts
 * import assert from "node:assert";
 * import { PackageWriter, ProgramBuilder, readPackage, scalar, tensor } from "./mod.ts";
 *
 * const path = `${await Deno.makeTempDir()}/Tiny.mlpackage`;
 * using pkg = PackageWriter.create(path);
 * const program = new ProgramBuilder({ weights: pkg.weights });
 * const main = program.function("main");
 * const x = main.input("x", { dtype: "fp16", shape: [1, 16] });
 * const w = main.const("w", tensor("fp16", [4, 16], new Array(64).fill(0.25)));
 * const y = main.op("linear", { x, weight: w }, { dtype: "fp16", shape: [1, 4] }, { name: "y" });
 * main.output(main.op("softmax", { x: y, axis: scalar("int32", -1) }, y.type, { name: "p" }));
 * pkg.finish(program.build({ metadata: { author: "llamane" } }));
 *
 * const { model } = readPackage(path);
 * assert.strictEqual(model.description.outputs[0]?.name, "p");
 * ```
 *
 * @module
 */

export * from "./blob_storage.ts";
export * from "./builder.ts";
export * from "./dtype.ts";
export * from "./errors.ts";
export * from "./identifier.ts";
export * from "./mil.ts";
export * from "./model.ts";
export * from "./package.ts";
export * from "./proto_reader.ts";
export * from "./proto_writer.ts";
export * from "./tensor.ts";
export * from "./validate.ts";
