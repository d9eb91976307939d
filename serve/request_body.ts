/**
 * Reading a request's JSON body within limits: at most `maxBytes` (413 beyond, before reading
 * when `Content-Length` says so), all of it within `timeoutSeconds` of the request's start (408
 * after, so a client trickling its body cannot hold the server's attention for long), valid
 * UTF-8 and JSON, and an object.
 *
 * @module
 */

import { ApiError } from "./api_error.ts";
import { isJsonObject, type JsonObject } from "./request_fields.ts";

/** Limits on a request body. */
export interface BodyLimits {
  readonly maxBytes: number;
  readonly timeoutSeconds: number;
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, `Request body too large: the limit is ${maxBytes} bytes`, {
    code: "request_too_large",
  });
}

async function readBytes(request: Request, limits: BodyLimits): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limits.maxBytes) throw tooLarge(limits.maxBytes);
  if (request.body === null) return new Uint8Array();
  const reader = request.body.getReader();
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, limits.timeoutSeconds * 1000);
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      length += value.length;
      if (length > limits.maxBytes) {
        await reader.cancel();
        throw tooLarge(limits.maxBytes);
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (!timedOut) {
      throw new ApiError(400, "The request body could not be read", { code: "invalid_body" });
    }
  } finally {
    clearTimeout(deadline);
  }
  if (timedOut) {
    throw new ApiError(408, `Request body not received within ${limits.timeoutSeconds} s`, {
      code: "request_timeout",
    });
  }
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/**
 * The request's body as a JSON object.
 *
 * @throws {ApiError} 413 too large, 408 too slow, 400 not UTF-8 JSON or not an object
 */
export async function readJsonBody(request: Request, limits: BodyLimits): Promise<JsonObject> {
  const bytes = await readBytes(request, limits);
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new ApiError(400, "The request body is not valid JSON", { code: "invalid_json" });
  }
  if (!isJsonObject(body)) {
    throw new ApiError(400, "The request body must be a JSON object", { code: "invalid_json" });
  }
  return body;
}
