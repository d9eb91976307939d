/**
 * A bundle's manifest.json: the contract for anyone running the bundle with their own code.
 * Plain JSON, so any language can read it; the `BundleManifest` type documents every field.
 *
 *   deno run --allow-read manifest.ts BUNDLE
 */

import { BUNDLE_FORMAT, type BundleManifest } from "@llamane/llamane/bundle";

const bundle = Deno.args[0];
if (bundle === undefined) throw new Error("Usage: manifest.ts BUNDLE");

const manifest: BundleManifest = JSON.parse(await Deno.readTextFile(`${bundle}/manifest.json`));
if (manifest.format !== BUNDLE_FORMAT) throw new Error(`${bundle} is not a llamane bundle`);

const { model, export: options, tokenizer } = manifest;
console.log(`written by llamane ${manifest.writer}, I/O contract ${manifest.ioContractVersion}`);
console.log(`model: dim ${model.dim}, ${model.nLayers} layers, vocabulary ${model.vocabSize}`);
console.log(`export: ${options.dtype}, ${options.inputLen} tokens per call`);
console.log(`tokenizer: ${tokenizer?.kind ?? "none"}, stop tokens ${tokenizer?.stopTokens}`);

// The pieces run in this order; each passes its outputs (hidden states, new cache rows) on.
for (const piece of manifest.pieces) {
  for (const fn of piece.functions) {
    const io = (specs: typeof fn.inputs) =>
      specs.slice(0, 4).map((s) => `${s.name} ${s.dtype}[${s.shape.join(",")}]`).join(" ");
    console.log(`${piece.name}.${fn.name} (L ${fn.callLength})`);
    console.log(`  in:  ${io(fn.inputs)}${fn.inputs.length > 4 ? " ..." : ""}`);
    console.log(`  out: ${io(fn.outputs)}${fn.outputs.length > 4 ? " ..." : ""}`);
  }
}
