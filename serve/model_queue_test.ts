import assert from "node:assert/strict";
import { ApiError } from "./api_error.ts";
import { ModelQueue } from "./model_queue.ts";

Deno.test("ModelQueue grants the model in arrival order and refuses beyond its length with 429", async () => {
  const queue = new ModelQueue(2);
  const never = new AbortController().signal;
  const order: string[] = [];
  const first = await queue.acquire(never);
  const waiting = ["b", "c"].map((name) =>
    queue.acquire(never).then((lease) => {
      order.push(name);
      return lease;
    })
  );
  assert.equal(queue.waiting, 2);
  const refused = await queue.acquire(never).catch((error) => error);
  assert.ok(refused instanceof ApiError);
  assert.equal(refused.status, 429);
  assert.match(refused.headers["retry-after"]!, /^[1-9]\d*$/);
  first[Symbol.dispose]();
  const second = await waiting[0]!;
  assert.deepEqual(order, ["b"]);
  second[Symbol.dispose]();
  second[Symbol.dispose](); // a second release hands nothing on
  (await waiting[1]!)[Symbol.dispose]();
  assert.deepEqual(order, ["b", "c"]);
  assert.equal(queue.busy, false);
});

Deno.test("ModelQueue: a request that gives up while waiting leaves the queue", async () => {
  const queue = new ModelQueue(1);
  const never = new AbortController().signal;
  const held = await queue.acquire(never);
  const giveUp = new AbortController();
  const leaving = queue.acquire(giveUp.signal);
  giveUp.abort(new Error("client gone"));
  await assert.rejects(leaving, /client gone/);
  assert.equal(queue.waiting, 0);
  held[Symbol.dispose]();
  assert.equal(queue.busy, false);
  (await queue.acquire(never))[Symbol.dispose]();
});
