import assert from "node:assert/strict";
import { TokenizerFormatError } from "../errors.ts";
import { looksLikeRanksFile, parseRanksFile } from "./ranks_file.ts";

/** A ranks file of the 256 single bytes plus `extra` lines, in tiktoken's format. */
function ranksFile(extra: string[] = [], lineEnd = "\n"): Uint8Array {
  const lines = Array.from({ length: 256 }, (_, b) => `${btoa(String.fromCharCode(b))} ${b}`);
  return new TextEncoder().encode([...lines, ...extra].join(lineEnd) + lineEnd);
}

function assertRejected(bytes: Uint8Array, message: RegExp): void {
  assert.throws(() => parseRanksFile(bytes, "r.model"), (error: unknown) => {
    assert.ok(error instanceof TokenizerFormatError, String(error));
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("parseRanksFile() reads tokens by rank, with LF or CRLF lines", () => {
  for (const lineEnd of ["\n", "\r\n"]) {
    const { tokens, rankOf } = parseRanksFile(ranksFile([`${btoa("ab")} 256`], lineEnd), "r");
    assert.equal(tokens.length, 257);
    assert.equal(tokens[256], "ab");
    assert.equal(rankOf.get("\xff"), 255);
  }
});

Deno.test("parseRanksFile() rejects bad base64 and malformed lines", () => {
  assertRejected(ranksFile(["YWJ 256"]), /bad base64 on line 257 \(offset \d+\)/);
  assertRejected(ranksFile(["YW=j 256"]), /line 257 \(offset \d+\) is not "<base64 token> <rank>"/);
  assertRejected(ranksFile(["YWJj"]), /line 257 .* is not "<base64 token> <rank>"/);
  assertRejected(ranksFile(["YWJj -3"]), /line 257/);
});

Deno.test("parseRanksFile() rejects duplicate ranks and tokens", () => {
  assertRejected(
    ranksFile([`${btoa("ab")} 256`, `${btoa("cd")} 256`]),
    /duplicate rank 256 on line 258 \(offset \d+\), first on line 257/,
  );
  assertRejected(
    ranksFile([`${btoa("ab")} 256`, `${btoa("ab")} 257`]),
    /duplicate token on line 258 .*first on line 257/,
  );
});

Deno.test("parseRanksFile() rejects gaps in the ranks and missing single bytes", () => {
  assertRejected(ranksFile([`${btoa("ab")} 300`]), /rank 256 is missing .*line 257 has rank 300/);
  const withoutZ = new TextDecoder().decode(ranksFile()).replace(/^eg== 122\n/m, "");
  assertRejected(
    new TextEncoder().encode(withoutZ + `${btoa("ab")} 122\n`),
    /single-byte token 0x7a is missing/,
  );
  assertRejected(new TextEncoder().encode("\n\n"), /holds no tokens/);
});

Deno.test("looksLikeRanksFile() recognises only the ranks format", () => {
  assert.ok(looksLikeRanksFile(ranksFile()));
  for (const text of ['{"model": 1}', "\x0a\x05<unk>", "hello world", ""]) {
    assert.ok(!looksLikeRanksFile(new TextEncoder().encode(text)), text);
  }
});
