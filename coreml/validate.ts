/**
 * Structural checks of a MIL program and its model description, run by the writer before it
 * encodes and by the reader after it decodes: identifiers, unique value names, bindings to values
 * defined earlier, well-formed constants, and descriptions that match their functions. Op
 * semantics (which parameters an op takes, shape inference) are the exporter's and coremltools'
 * business, not this module's.
 *
 * @module
 */

import { BLOB_ALIGNMENT } from "./blob_storage.ts";
import { DTYPE_INFO } from "./dtype.ts";
import { MilProgramError } from "./errors.ts";
import { checkIdentifier } from "./identifier.ts";
import { type MilFunction, type Operation, OPSET, type Program, type Value } from "./mil.ts";
import {
  describeFunction,
  type FeatureDescription,
  type Model,
  SPECIFICATION_VERSION,
} from "./model.ts";
import {
  checkShape,
  checkTensor,
  formatTensorType,
  sameTensorType,
  type Tensor,
} from "./tensor.ts";

/**
 * Checks a program's structure.
 *
 * @throws {MilProgramError} naming the function and operation that break a rule
 * @throws {TensorShapeError} when a constant's values do not fit its type
 */
export function validateProgram(program: Program): void {
  if (program.functions.size === 0) {
    throw new MilProgramError("Cannot use program: it has no functions");
  }
  for (const [name, fn] of program.functions) validateFunction(name, fn);
}

function validateFunction(functionName: string, fn: MilFunction): void {
  checkIdentifier(functionName, "function", { functionName });
  if (fn.opset !== OPSET) {
    throw new MilProgramError(
      `Cannot use function "${functionName}": opset "${fn.opset}" is unsupported, llamane ` +
        `writes and reads "${OPSET}" only`,
      { functionName },
    );
  }
  const defined = new Set<string>();
  const define = (name: string, what: string, operationIndex?: number) => {
    const where = operationIndex === undefined
      ? { functionName }
      : { functionName, operationIndex };
    checkIdentifier(name, what, where);
    if (defined.has(name)) {
      throw new MilProgramError(
        `Cannot name ${what} "${name}": function "${functionName}" already defines a value ` +
          `with that name`,
        where,
      );
    }
    defined.add(name);
  };
  for (const input of fn.inputs) {
    checkShape(input.type.shape);
    define(input.name, `an input of function "${functionName}"`);
  }
  fn.block.operations.forEach((op, operationIndex) => {
    const where = { functionName, operationIndex };
    const what = `op "${op.name}" (${op.type}) of function "${functionName}"`;
    checkIdentifier(op.type, `the type of ${what}`, where);
    checkIdentifier(op.name, `op ${operationIndex} of function "${functionName}"`, where);
    for (const [param, bindings] of op.inputs) {
      checkIdentifier(param, `a parameter of ${what}`, where);
      if (bindings.length === 0) {
        throw new MilProgramError(
          `Cannot use ${what}: parameter "${param}" has no arguments`,
          where,
        );
      }
      for (const binding of bindings) {
        if (typeof binding !== "string") {
          checkValue(binding, `parameter "${param}" of ${what}`, where);
        } else if (!defined.has(binding)) {
          throw new MilProgramError(
            `Cannot use ${what}: parameter "${param}" refers to "${binding}", which is not ` +
              `defined before it`,
            where,
          );
        }
      }
    }
    for (const [key, value] of op.attributes) {
      checkIdentifier(key, `an attribute of ${what}`, where);
      checkValue(value, `attribute "${key}" of ${what}`, where);
    }
    if (op.type === "const") validateConst(op, what, where);
    for (const output of op.outputs) {
      checkShape(output.type.shape);
      define(output.name, `an output of ${what}`, operationIndex);
    }
  });
  if (fn.block.outputs.length === 0) {
    throw new MilProgramError(`Cannot use function "${functionName}": it has no outputs`, {
      functionName,
    });
  }
  for (const output of fn.block.outputs) {
    if (!defined.has(output)) {
      throw new MilProgramError(
        `Cannot use function "${functionName}": output "${output}" is not defined in it`,
        { functionName },
      );
    }
  }
}

function validateConst(
  op: Operation,
  what: string,
  where: { functionName: string; operationIndex: number },
): void {
  const val = op.attributes.get("val");
  const output = op.outputs[0];
  if (
    op.inputs.size !== 0 || op.attributes.size !== 1 || val === undefined ||
    op.outputs.length !== 1 || output === undefined
  ) {
    throw new MilProgramError(
      `Cannot use ${what}: a const takes no inputs, one attribute "val" and one output`,
      where,
    );
  }
  if (!sameTensorType(output.type, val)) {
    throw new MilProgramError(
      `Cannot use ${what}: output "${output.name}" is declared ${formatTensorType(output.type)} ` +
        `but its value is ${formatTensorType(val)}`,
      where,
    );
  }
}

function checkValue(
  value: Value,
  what: string,
  where: { functionName: string; operationIndex: number },
): void {
  if (value.kind === "immediate") {
    checkTensor(value as Tensor, what);
    return;
  }
  checkShape(value.shape);
  if (DTYPE_INFO[value.dtype].blobCode === undefined) {
    throw new MilProgramError(
      `Cannot use ${what}: ${value.dtype} values cannot live in weight.bin`,
    );
  }
  const offset = value.offsetBytes;
  if (!Number.isSafeInteger(offset) || offset < BLOB_ALIGNMENT || offset % BLOB_ALIGNMENT !== 0) {
    throw new MilProgramError(
      `Cannot use ${what}: weight.bin offset "${offset}" is not a positive multiple of ` +
        `${BLOB_ALIGNMENT}`,
      where,
    );
  }
}

/**
 * Checks a model: its program (see {@link validateProgram}), its specification version, and that
 * its description matches the program in form, names, dtypes and shapes.
 *
 * @throws {MilProgramError} naming what disagrees
 */
export function validateModel(model: Model): void {
  if (
    !Number.isInteger(model.specificationVersion) ||
    model.specificationVersion < SPECIFICATION_VERSION
  ) {
    throw new MilProgramError(
      `Cannot use model: specification version "${model.specificationVersion}" is below ` +
        `${SPECIFICATION_VERSION}, the first that supports opset ${OPSET}`,
    );
  }
  const { program, description } = model;
  validateProgram(program);
  const multifunction = description.functions.length > 0 || description.defaultFunctionName !== "";
  if (!multifunction) {
    const main = program.functions.get("main");
    if (main === undefined || program.functions.size !== 1) {
      throw new MilProgramError(
        `Cannot use model: a single-function description needs exactly one function named ` +
          `"main", but the program has [${[...program.functions.keys()]}]`,
      );
    }
    const expected = describeFunction("main", main);
    compareFeatures("main", "input", description.inputs, expected.inputs);
    compareFeatures("main", "output", description.outputs, expected.outputs);
    return;
  }
  if (description.inputs.length > 0 || description.outputs.length > 0) {
    throw new MilProgramError(
      "Cannot use model: a multifunction description must leave the top-level inputs and " +
        "outputs empty",
    );
  }
  // Order is not compared: protobuf maps (the program's functions) have none.
  const described = description.functions.map((f) => f.name);
  const names = [...program.functions.keys()];
  if (
    new Set(described).size !== described.length || described.length !== names.length ||
    described.some((n) => !program.functions.has(n))
  ) {
    throw new MilProgramError(
      `Cannot use model: the description lists functions [${described}] but the program has ` +
        `[${names}]`,
    );
  }
  if (!program.functions.has(description.defaultFunctionName)) {
    throw new MilProgramError(
      `Cannot use model: default function "${description.defaultFunctionName}" is not one of ` +
        `[${names}]`,
    );
  }
  for (const f of description.functions) {
    const expected = describeFunction(f.name, program.functions.get(f.name)!);
    compareFeatures(f.name, "input", f.inputs, expected.inputs);
    compareFeatures(f.name, "output", f.outputs, expected.outputs);
  }
}

function compareFeatures(
  functionName: string,
  role: string,
  actual: readonly FeatureDescription[],
  expected: readonly FeatureDescription[],
): void {
  const show = (fs: readonly FeatureDescription[]) =>
    fs.map((f) => `${f.name}: ${formatTensorType(f)}`).join(", ");
  const same = actual.length === expected.length &&
    actual.every((a, i) => {
      const e = expected[i]!;
      return a.name === e.name && sameTensorType(a, e);
    });
  if (!same) {
    throw new MilProgramError(
      `Cannot use model: the ${role}s described for function "${functionName}" ` +
        `[${show(actual)}] differ from the function's [${show(expected)}]`,
      { functionName },
    );
  }
}
