/**
 * Tampered bundles, run through the CLI with read permission for the bundle alone: links to
 * files outside it, special files in place of its files, names that climb out of it. Each must
 * end at once with an error that names the offending file and quotes nothing from any file.
 */

import assert from "node:assert/strict";
import { exportModel } from "../export/export_model.ts";
import { llamane } from "./_testing.ts";

const KJV = new URL("../models/kjv-tiny/", import.meta.url).pathname;
const root = await Deno.makeTempDir();
const pristine = `${root}/pristine.llamane`;
await exportModel({
  checkpoint: `${KJV}consolidated.00.pth`,
  params: `${KJV}params.json`,
  output: pristine,
  inputLen: 8,
  maxContextLen: 64,
});
/** A file beside the bundles that no command may read. */
const secret = `${root}/secret.txt`;
await Deno.writeTextFile(secret, "admin:SECRET-PASSWORD:0:0\n".repeat(4));

const MODEL = "embedding.mlpackage/Data/com.apple.CoreML/model.mlmodel";
const WEIGHTS = "embedding.mlpackage/Data/com.apple.CoreML/weights/weight.bin";

let copies = 0;
/** A fresh copy of the bundle with `tamper` applied to it. */
async function tampered(tamper: (bundle: string) => Promise<void>): Promise<string> {
  const bundle = `${root}/copy${copies++}.llamane`;
  await new Deno.Command("cp", { args: ["-r", pristine, bundle] }).output();
  await tamper(bundle);
  return bundle;
}

async function replaceWithLink(bundle: string, file: string, target: string): Promise<void> {
  await Deno.remove(`${bundle}/${file}`);
  await Deno.symlink(target, `${bundle}/${file}`);
}

async function replaceWithFifo(bundle: string, file: string): Promise<void> {
  await Deno.remove(`${bundle}/${file}`);
  await new Deno.Command("mkfifo", { args: [`${bundle}/${file}`] }).output();
}

async function editManifest(bundle: string, edit: (m: { tokenizer: { file: string } }) => void) {
  const manifest = JSON.parse(await Deno.readTextFile(`${bundle}/manifest.json`));
  edit(manifest);
  await Deno.writeTextFile(`${bundle}/manifest.json`, JSON.stringify(manifest));
}

/** Runs `command` on the bundle and checks it fails naming `offending`, quoting no file. */
async function assertRefused(bundle: string, command: "inspect" | "run", offending: RegExp) {
  const args = command === "inspect" ? [bundle] : ["-m", bundle, "--max_new_tokens", "1"];
  const result = await llamane([`--allow-read=${bundle}`], command, ...args);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, offending);
  assert.doesNotMatch(result.stderr, /SECRET|admin/);
  assert.ok(!result.stderr.includes(secret), result.stderr);
  assert.equal(result.stdout, "");
}

Deno.test("a link from a bundle file to a file outside it is refused, naming the link", async () => {
  const cases: [string, "inspect" | "run"][] = [
    ["manifest.json", "inspect"],
    ["embedding.mlpackage/Manifest.json", "inspect"],
    [MODEL, "inspect"],
    [WEIGHTS, "inspect"],
    ["tokenizer.model", "run"],
  ];
  for (const [file, command] of cases) {
    const bundle = await tampered((b) => replaceWithLink(b, file, secret));
    await assertRefused(bundle, command, new RegExp(`"${bundle}/${file}".* resolves outside`));
  }
});

Deno.test("a tokenizer file name that leaves the bundle is refused before anything is read", async () => {
  for (const name of ["../secret.txt", secret, "sub/../../secret.txt"]) {
    const bundle = await tampered((b) => editManifest(b, (m) => m.tokenizer.file = name));
    await assertRefused(
      bundle,
      "run",
      /"tokenizer.file" must be a file name at the top of the bundle/,
    );
  }
});

Deno.test("a FIFO or a device in place of a bundle file is refused at once", async () => {
  const fifos: [string, "inspect" | "run"][] = [
    ["manifest.json", "inspect"],
    ["embedding.mlpackage/Manifest.json", "inspect"],
    [MODEL, "inspect"],
    [WEIGHTS, "inspect"],
    ["tokenizer.model", "run"],
  ];
  for (const [file, command] of fifos) {
    const bundle = await tampered((b) => replaceWithFifo(b, file));
    await assertRefused(bundle, command, new RegExp(`"${bundle}/${file}".* is a FIFO`));
  }
  for (const device of ["/dev/zero", "/dev/urandom"]) {
    const bundle = await tampered((b) => replaceWithLink(b, MODEL, device));
    await assertRefused(bundle, "inspect", new RegExp(`"${bundle}/${MODEL}".* resolves outside`));
  }
  // A device inside the bundle (made by root here) is still no regular file.
  const bundle = await tampered(async (b) => {
    await new Deno.Command("mknod", { args: [`${b}/zero`, "c", "1", "5"] }).output();
    await replaceWithLink(b, "manifest.json", "zero");
  });
  await assertRefused(bundle, "inspect", /manifest.json" is a device, expected a file/);
});
