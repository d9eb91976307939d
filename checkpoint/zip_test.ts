import assert from "node:assert/strict";
import { CheckpointFormatError } from "./errors.ts";
import { RandomAccessFile } from "./random_access_file.ts";
import { ZipArchive } from "./zip.ts";
import { fixture, withTempFile } from "./_testing.ts";

const CENTRAL_SIGNATURE = 0x02014b50;

/** Offset of the first central directory header, found by its signature. */
function firstCentralHeader(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i + 4 <= bytes.length; i++) {
    if (view.getUint32(i, true) === CENTRAL_SIGNATURE) return i;
  }
  throw new Error("no central directory header");
}

/** Edits the first central directory entry of a copy of `name`, then reads that entry whole. */
async function readFirstEntryAfter(name: string, edit: (view: DataView, central: number) => void) {
  const bytes = await Deno.readFile(fixture(name));
  edit(new DataView(bytes.buffer), firstCentralHeader(bytes));
  return await withTempFile(bytes, async (path) => {
    using file = await RandomAccessFile.open(path);
    const zip = await ZipArchive.open(file);
    return await zip.readAll(zip.entries[0]!);
  });
}

function rejectsWith(promise: Promise<unknown>, pattern: RegExp) {
  return assert.rejects(promise, (error: Error) => {
    assert.ok(error instanceof CheckpointFormatError, `${error.name}: ${error.message}`);
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("ZipArchive lists a torch.save archive's members and reads one whole, CRC checked", async () => {
  using file = await RandomAccessFile.open(fixture("views.pth"));
  const zip = await ZipArchive.open(file);
  // torch writes the pickle first and puts every member under the archive folder.
  assert.equal(zip.entries[0]?.name, "views/data.pkl");
  assert.ok(zip.entries.every((entry) => entry.name.startsWith("views/")));
  const version = zip.get("views/version");
  assert.ok(version !== undefined);
  assert.match(new TextDecoder().decode(await zip.readAll(version)), /^\d+\n$/);
});

Deno.test("ZipArchive stops inflating an entry that grows past its declared size", async () => {
  await rejectsWith(
    readFirstEntryAfter("deflate.pth", (view, central) => view.setUint32(central + 24, 10, true)),
    /inflates to more than its declared 10 bytes/,
  );
});

Deno.test("ZipArchive rejects a deflated entry shorter than declared", async () => {
  await rejectsWith(
    readFirstEntryAfter(
      "deflate.pth",
      (view, central) => view.setUint32(central + 24, view.getUint32(central + 24, true) + 1, true),
    ),
    /inflates to \d+ bytes, declared/,
  );
});

Deno.test("ZipArchive rejects deflated data that does not inflate", async () => {
  await rejectsWith(
    readFirstEntryAfter("deflate.pth", (view, central) => view.setUint32(central + 20, 3, true)),
    /does not inflate|inflates to/,
  );
});

Deno.test("ZipArchive rejects encrypted entries and unknown compression methods", async () => {
  await rejectsWith(
    readFirstEntryAfter("views.pth", (view, central) => view.setUint16(central + 8, 1, true)),
    /encrypted/,
  );
  await rejectsWith(
    readFirstEntryAfter("deflate.pth", (view, central) => view.setUint16(central + 10, 12, true)),
    /compression method 12; only stored \(0\) and deflated \(8\)/,
  );
});

Deno.test("ZipArchive rejects a local header that names another entry", async () => {
  const bytes = await Deno.readFile(fixture("views.pth"));
  bytes[30] = "X".charCodeAt(0);
  await rejectsWith(
    withTempFile(bytes, async (path) => {
      using file = await RandomAccessFile.open(path);
      const zip = await ZipArchive.open(file);
      await zip.dataOffset(zip.entries[0]!);
    }),
    /local header at offset 0 names "Xiews\/data.pkl"/,
  );
});
