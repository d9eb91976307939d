import { deepStrictEqual, notStrictEqual, ok, strictEqual, throws } from "node:assert";
import { BlobStorageWriter } from "./blob_storage.ts";
import { ProgramBuilder } from "./builder.ts";
import { CoremlFormatError } from "./errors.ts";
import { MODEL_ITEM, PackageWriter, readPackage, WEIGHTS_ITEM } from "./package.ts";
import { tensor } from "./tensor.ts";

const DIR = Deno.makeTempDirSync({ prefix: "llamane_package_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(DIR, { recursive: true }));
let packages = 0;

/** Writes a one-linear package whose weight is `scale` times a ramp; returns its path. */
function writeSample(scale = 1): string {
  const path = `${DIR}/p${packages++}.mlpackage`;
  using pkg = PackageWriter.create(path);
  const program = new ProgramBuilder({ weights: pkg.weights });
  const f = program.function("main");
  const x = f.input("x", { dtype: "fp16", shape: [1, 16] });
  const w = f.const(
    "w",
    tensor("fp16", [4, 16], Array.from({ length: 64 }, (_, i) => scale * i / 64)),
  );
  f.output(f.op("linear", { x, weight: w }, { dtype: "fp16", shape: [1, 4] }, { name: "y" }));
  pkg.finish(program.build());
  return path;
}

function files(path: string): Uint8Array[] {
  return ["Manifest.json", `Data/${MODEL_ITEM.path}`, `Data/${WEIGHTS_ITEM.path}/weight.bin`].map((
    f,
  ) => Deno.readFileSync(`${path}/${f}`));
}

function manifestOf(
  path: string,
): Record<string, unknown> & { itemInfoEntries: Record<string, Record<string, string>> } {
  return JSON.parse(Deno.readTextFileSync(`${path}/Manifest.json`));
}

Deno.test("PackageWriter writes the layout and manifest coremltools expects", () => {
  const path = writeSample();
  const manifest = manifestOf(path);
  deepStrictEqual(Object.keys(manifest), [
    "fileFormatVersion",
    "itemInfoEntries",
    "rootModelIdentifier",
  ]);
  strictEqual(manifest.fileFormatVersion, "1.0.0");
  const entries = Object.entries(manifest.itemInfoEntries);
  for (const [id] of entries) {
    ok(/^[0-9A-F]{8}-[0-9A-F]{4}-8[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/.test(id), id);
  }
  const byName = Object.fromEntries(entries.map(([id, item]) => [item.name, { id, ...item }]));
  deepStrictEqual(byName["model.mlmodel"], { id: manifest.rootModelIdentifier, ...MODEL_ITEM });
  deepStrictEqual(byName["weights"], { id: byName["weights"]!.id, ...WEIGHTS_ITEM });
  const { model, weightsPath } = readPackage(path);
  strictEqual(weightsPath, `${path}/Data/com.apple.CoreML/weights/weight.bin`);
  deepStrictEqual(model.description.outputs.map((o) => o.name), ["y"]);
});

Deno.test("PackageWriter output is byte-identical for identical models and differs with the weights", () => {
  const [a, b, c] = [writeSample(), writeSample(), writeSample(2)];
  deepStrictEqual(files(a), files(b));
  notStrictEqual(manifestOf(a).rootModelIdentifier, manifestOf(c).rootModelIdentifier);
});

Deno.test("PackageWriter.create() refuses a wrong suffix and an existing path", () => {
  throws(() => PackageWriter.create(`${DIR}/model.pkg`), /must end in ".mlpackage"/);
  const path = writeSample();
  throws(() => PackageWriter.create(path), Deno.errors.AlreadyExists);
});

/** Copies a valid package, lets `edit` break it, and expects readPackage to say `message`. */
function rejects(edit: (path: string) => void, message: RegExp): void {
  const path = writeSample();
  edit(path);
  throws(
    () => readPackage(path),
    (e: unknown) => e instanceof CoremlFormatError && message.test(e.message),
  );
}

function editManifest(change: (m: ReturnType<typeof manifestOf>) => unknown) {
  return (path: string) => {
    const manifest = manifestOf(path);
    Deno.writeTextFileSync(`${path}/Manifest.json`, JSON.stringify(change(manifest) ?? manifest));
  };
}

function modelItem(m: ReturnType<typeof manifestOf>): Record<string, string> {
  return m.itemInfoEntries[m.rootModelIdentifier as string]!;
}

Deno.test("readPackage() rejects broken manifests", () => {
  rejects((p) => Deno.removeSync(`${p}/Manifest.json`), /Manifest.json" is missing/);
  rejects(
    (p) => Deno.writeTextFileSync(`${p}/Manifest.json`, "{"),
    /Manifest.json is not valid JSON/,
  );
  rejects(editManifest(() => [1]), /Manifest.json is not a JSON object/);
  rejects(editManifest((m) => void (m.fileFormatVersion = "1.0")), /three dot-separated integers/);
  rejects(
    editManifest((m) => void (m.fileFormatVersion = "1.1.0")),
    /newer than the supported 1.0.0/,
  );
  rejects(
    editManifest(({ itemInfoEntries: _, ...rest }) => rest),
    /has no "itemInfoEntries" object/,
  );
  rejects(
    editManifest((m) => void (m.rootModelIdentifier = "nope")),
    /rootModelIdentifier "nope" names no item/,
  );
  rejects(editManifest((m) => void delete modelItem(m).author), /has no string "author"/);
});

Deno.test("readPackage() rejects item paths that leave the package or do not exist", () => {
  rejects(
    editManifest((m) => void (modelItem(m).path = "../../etc/passwd")),
    /does not stay inside the package/,
  );
  rejects(
    editManifest((m) => void (modelItem(m).path = "/etc/passwd")),
    /does not stay inside the package/,
  );
  rejects(editManifest((m) => void (modelItem(m).path = "com.apple.CoreML/none")), /is missing/);
  rejects(
    editManifest((m) => void (modelItem(m).path = "com.apple.CoreML/weights")),
    /is a directory, expected a file/,
  );
  rejects((p) => {
    const outside = `${DIR}/outside.mlmodel`;
    Deno.copyFileSync(`${p}/Data/${MODEL_ITEM.path}`, outside);
    Deno.removeSync(`${p}/Data/${MODEL_ITEM.path}`);
    Deno.symlinkSync(outside, `${p}/Data/${MODEL_ITEM.path}`);
  }, /model.mlmodel" resolves outside/);
});

Deno.test("readPackage() checks every weight.bin reference against the blob records", () => {
  const replaceWeights = (dtype: "fp32" | "fp16", count: number) => (path: string) => {
    using writer = BlobStorageWriter.create(`${path}/Data/${WEIGHTS_ITEM.path}/weight.bin`);
    writer.append(tensor(dtype, [count], new Array(count).fill(1)));
  };
  rejects(replaceWeights("fp32", 64), /holds fp32 data, but the model declares fp16/);
  rejects(
    replaceWeights("fp16", 63),
    /declares 64 elements at weight.bin offset 64, but the blob holds 63/,
  );
  rejects(
    (p) => Deno.removeSync(`${p}/Data/${WEIGHTS_ITEM.path}/weight.bin`),
    /refers to weight.bin, but the package has none/,
  );
  rejects(
    (p) => BlobStorageWriter.create(`${p}/Data/${WEIGHTS_ITEM.path}/weight.bin`).close(),
    /blob metadata at offset 64 runs past the end of the file \(size 64\)/,
  );
});

Deno.test("readPackage() reports a corrupt model.mlmodel with its path", () => {
  rejects(
    (p) =>
      Deno.writeFileSync(
        `${p}/Data/${MODEL_ITEM.path}`,
        Uint8Array.of(0x08, 0x09, 0xb2, 0x1f, 0x64),
      ),
    /model\.mlmodel": truncated protobuf: field 502 at offset 2/,
  );
});
