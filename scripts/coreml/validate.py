"""Validates .mlpackage directories with coremltools and prints a JSON report.

Usage: validate.py [--value FUNCTION:VAR=OUT.f32]... PACKAGE...

For each package (checked on a temporary copy, because opening a package with coremltools
rewrites its Manifest.json):
  1. ModelPackage.isValid: manifest version, item fields, item paths exist.
  2. load_spec: model.mlmodel parses as a CoreML.Specification.Model.
  3. The milproto frontend rebuilds the MIL program with per-op type inference; every op's
     declared output dtype and shape must equal the inferred ones (checked strictly here too,
     since coremltools' loader skips the check for const and constexpr ops).
  4. Every function's described inputs and outputs (top-level or per-function descriptions)
     must equal the program's inputs and outputs in name, dtype and shape.
  5. Every weight.bin reference is read with coremltools' blob storage reader, which checks the
     sentinel, dtype and padding; its element count must equal the declared shape's.
With --value (one package only), the named value of a function (a const, or a constexpr such as
constexpr_blockwise_shift_scale, dequantized by coremltools) is written as little-endian float32.

The report on stdout: {"packages": [{"path", "specificationVersion", "defaultFunctionName",
"functions": {name: {"inputs", "outputs", "ops"}}, "blobs": [{"offset", "dtype", "count"}],
"values": {"FUNCTION:VAR": {"dtype", "shape", "path"}}}]}.
Any failure prints "validate.py: <package>: <reason>" to stderr and exits with status 1.
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile

import numpy as np

# On Linux coremltools warns at import that its Core ML runtime bridge is missing; validation never
# needs it, and the noise would bury our own error messages.
logging.getLogger("coremltools").setLevel(logging.ERROR)

import coremltools as ct  # noqa: E402  (after the logging setup above)
from coremltools.converters.mil.frontend.milproto.load import load as milproto_to_pymil  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402
from coremltools.libmilstoragepython import _BlobStorageReader  # noqa: E402
from coremltools.libmodelpackage import ModelPackage  # noqa: E402
from coremltools.proto import FeatureTypes_pb2, MIL_pb2  # noqa: E402


class ValidationError(Exception):
    """A package failed a check; the message says which and why."""


ARRAY_DTYPES = {
    FeatureTypes_pb2.ArrayFeatureType.FLOAT16: "fp16",
    FeatureTypes_pb2.ArrayFeatureType.FLOAT32: "fp32",
    FeatureTypes_pb2.ArrayFeatureType.INT32: "int32",
}

BLOB_READERS = {
    MIL_pb2.FLOAT16: ("fp16", "read_fp16_data"),
    MIL_pb2.FLOAT32: ("fp32", "read_float_data"),
    MIL_pb2.INT32: ("int32", "read_int32_data"),
    MIL_pb2.INT8: ("int8", "read_int8_data"),
    MIL_pb2.UINT8: ("uint8", "read_uint8_data"),
    MIL_pb2.INT4: ("int4", "read_int4_data"),
    MIL_pb2.UINT4: ("uint4", "read_uint4_data"),
    MIL_pb2.UINT6: ("uint6", "read_uint6_data"),
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("packages", nargs="+", metavar="PACKAGE")
    parser.add_argument(
        "--value",
        action="append",
        default=[],
        metavar="FUNCTION:VAR=OUT.f32",
        help="write the value VAR of FUNCTION as float32 to OUT.f32 (one package only)",
    )
    args = parser.parse_args()
    if args.value and len(args.packages) != 1:
        parser.error("--value needs exactly one PACKAGE")
    requests = []
    for spec in args.value:
        target, sep, out = spec.partition("=")
        function, colon, var = target.partition(":")
        if not sep or not colon or not function or not var or not out:
            parser.error(f'--value "{spec}" is not FUNCTION:VAR=OUT.f32')
        requests.append((function, var, out))
    return args.packages, requests


def tensor_of(value_type):
    """(dtype string, shape list) of a MILSpec.ValueType holding a tensor."""
    if value_type.WhichOneof("type") != "tensorType":
        raise ValidationError(f"value type {value_type.WhichOneof('type')} is not a tensor")
    t = value_type.tensorType
    shape = []
    for dim in t.dimensions:
        if dim.WhichOneof("dimension") != "constant":
            raise ValidationError("a tensor type has a non-constant dimension")
        shape.append(dim.constant.size)
    return types.builtin_to_string(types.PROTO_TO_BUILTIN_TYPE[t.dataType]), shape


def pymil_tensor(var):
    """(dtype string, shape list) of a pymil Var."""
    return types.builtin_to_string(var.dtype), [int(d) for d in var.shape]


def described_functions(spec):
    """Function name -> (inputs, outputs) as [(name, dtype, shape)], from the description."""
    def features(descs):
        out = []
        for f in descs:
            if f.type.WhichOneof("Type") != "multiArrayType":
                raise ValidationError(f'feature "{f.name}" is not a multi-array')
            array = f.type.multiArrayType
            if array.dataType not in ARRAY_DTYPES:
                raise ValidationError(f'feature "{f.name}" has unsupported data type {array.dataType}')
            out.append((f.name, ARRAY_DTYPES[array.dataType], list(array.shape)))
        return out

    d = spec.description
    if len(d.functions) == 0 and not d.defaultFunctionName:
        return {"main": (features(d.input), features(d.output))}
    if len(d.input) or len(d.output):
        raise ValidationError("a multifunction description also has top-level inputs or outputs")
    if d.defaultFunctionName not in [f.name for f in d.functions]:
        raise ValidationError(f'default function "{d.defaultFunctionName}" is not described')
    return {f.name: (features(f.input), features(f.output)) for f in d.functions}


def blob_values(function_spec):
    """Yields (op name, MILSpec.Value) for every weight.bin reference in a function."""
    block = function_spec.block_specializations[function_spec.opset]
    for op in block.operations:
        name = op.attributes["name"].immediateValue.tensor.strings.values[0]
        for value in op.attributes.values():
            if value.WhichOneof("value") == "blobFileValue":
                yield name, value
        for argument in op.inputs.values():
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "value" and \
                        binding.value.WhichOneof("value") == "blobFileValue":
                    yield name, binding.value


def check_op_types(fn_name, function_spec, pymil_function):
    """Every declared op output type must equal coremltools' inferred one, exactly."""
    by_name = {op.name: op for op in pymil_function.operations}
    block = function_spec.block_specializations[function_spec.opset]
    counts = {}
    for op in block.operations:
        counts[op.type] = counts.get(op.type, 0) + 1
        name = op.attributes["name"].immediateValue.tensor.strings.values[0]
        pymil_op = by_name.get(name)
        if pymil_op is None:
            raise ValidationError(f'function "{fn_name}": op "{name}" vanished when loaded')
        if len(pymil_op.outputs) != len(op.outputs):
            raise ValidationError(f'function "{fn_name}": op "{name}" has a different output count')
        for declared, var in zip(op.outputs, pymil_op.outputs):
            want = tensor_of(declared.type)
            got = pymil_tensor(var)
            if list(want) != list(got):
                raise ValidationError(
                    f'function "{fn_name}": op "{name}" ({op.type}) declares output '
                    f'"{declared.name}" as {want[0]}{want[1]} but coremltools infers {got[0]}{got[1]}'
                )
    return counts


def check_io(fn_name, described, pymil_function):
    inputs, outputs = described
    actual_inputs = [(n, *pymil_tensor(v)) for n, v in pymil_function.inputs.items()]
    actual_outputs = [(v.name, *pymil_tensor(v)) for v in pymil_function.outputs]
    for role, want, got in (("inputs", inputs, actual_inputs), ("outputs", outputs, actual_outputs)):
        if [tuple(x) for x in want] != [tuple(x) for x in got]:
            raise ValidationError(
                f'function "{fn_name}": described {role} {want} differ from the program\'s {got}'
            )
    return (
        [{"name": n, "dtype": d, "shape": s} for n, d, s in inputs],
        [{"name": n, "dtype": d, "shape": s} for n, d, s in outputs],
    )


def find_var(pymil_function, var_name):
    for op in pymil_function.operations:
        for var in op.outputs:
            if var.name == var_name:
                return op, var
    return None, None


def write_value(prog, function, var_name, out):
    if function not in prog.functions:
        raise ValidationError(f'--value: no function "{function}"')
    op, var = find_var(prog.functions[function], var_name)
    if var is None:
        raise ValidationError(f'--value: function "{function}" has no value "{var_name}"')
    value = var.val if var.val is not None else op.materialized_val_inference()
    if value is None:
        raise ValidationError(f'--value: "{var_name}" of "{function}" is not a compile-time value')
    array = np.asarray(value)
    array.astype("<f4").tofile(out)
    return {"dtype": str(array.dtype), "shape": list(array.shape), "path": out}


def load_program(package, scratch):
    """Copies `package` into `scratch` (opening a package with coremltools rewrites its manifest)
    and returns its spec, weights directory and MIL program rebuilt with type inference."""
    if not os.path.isdir(package):
        raise ValidationError("not a directory")
    copy = os.path.join(scratch, os.path.basename(os.path.normpath(package)))
    shutil.copytree(package, copy)
    if not ModelPackage.isValid(copy):
        raise ValidationError("ModelPackage.isValid rejects the package (manifest or items)")
    spec = ct.utils.load_spec(copy)
    weights_dir = ct.models.MLModel(copy, skip_model_load=True).weights_dir
    prog = milproto_to_pymil(
        model_spec=spec,
        specification_version=spec.specificationVersion,
        file_weights_dir=weights_dir,
    )
    return spec, weights_dir, prog


def validate(package, value_requests):
    with tempfile.TemporaryDirectory() as tmp:
        spec, weights_dir, prog = load_program(package, tmp)
        described = described_functions(spec)
        # Functions are a protobuf map: compare them as a set.
        if sorted(described) != sorted(prog.functions):
            raise ValidationError(
                f"described functions {list(described)} differ from the program's {list(prog.functions)}"
            )
        report = {
            "path": package,
            "specificationVersion": spec.specificationVersion,
            "defaultFunctionName": spec.description.defaultFunctionName,
            "functions": {},
            "blobs": [],
            "values": {},
        }
        blobs = {}
        reader = _BlobStorageReader(os.path.join(weights_dir, "weight.bin"))
        for fn_name, function_spec in spec.mlProgram.functions.items():
            counts = check_op_types(fn_name, function_spec, prog.functions[fn_name])
            inputs, outputs = check_io(fn_name, described[fn_name], prog.functions[fn_name])
            report["functions"][fn_name] = {"inputs": inputs, "outputs": outputs, "ops": counts}
            for op_name, value in blob_values(function_spec):
                dtype_code = value.type.tensorType.dataType
                if dtype_code not in BLOB_READERS:
                    raise ValidationError(f'op "{op_name}": blob dtype {dtype_code} is unsupported')
                dtype, reader_name = BLOB_READERS[dtype_code]
                _, shape = tensor_of(value.type)
                offset = value.blobFileValue.offset
                data = getattr(reader, reader_name)(offset)
                count = int(np.prod(shape))
                if data.size != count:
                    raise ValidationError(
                        f'op "{op_name}": blob at offset {offset} holds {data.size} {dtype} '
                        f"elements, the type {shape} needs {count}"
                    )
                blobs[offset] = {"offset": offset, "dtype": dtype, "count": count}
        report["blobs"] = [blobs[k] for k in sorted(blobs)]
        for function, var_name, out in value_requests:
            report["values"][f"{function}:{var_name}"] = write_value(prog, function, var_name, out)
        return report


def main():
    packages, value_requests = parse_args()
    reports = []
    for package in packages:
        try:
            reports.append(validate(package, value_requests))
        except Exception as error:  # every failure, coremltools' own included, is reported alike
            print(f"validate.py: {package}: {type(error).__name__}: {error}", file=sys.stderr)
            sys.exit(1)
    json.dump({"packages": reports}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
