/**
 * A headless Chromium driven through the DevTools protocol over Deno's WebSocket, for tests of
 * pages as a browser runs them: typing goes through the browser's input events, and scripts,
 * fetch and the content security policy are Chromium's own. It needs `chromium` on PATH (Debian's
 * `chromium` package); without it, launching fails and says how to install it.
 *
 * @module
 */

import { DevToolsConnection, type ProtocolEvent } from "./devtools.ts";

/** What launching needs, said when `chromium` cannot be started. */
const MISSING =
  "Chromium is not installed: browser tests need `chromium` on PATH (Debian: apt-get install chromium)";

/** A request a page made, and its response once one came. */
export interface PageRequest {
  readonly url: string;
  readonly method: string;
  /** The body sent, when there was one. */
  readonly body?: string;
  /** The response's status and media type (without parameters). */
  response?: { readonly status: number; readonly mimeType: string };
}

/** A page (a browser tab), the requests it made and what went wrong on it. */
export class BrowserPage {
  readonly #connection: DevToolsConnection;
  readonly #sessionId: string;
  readonly #errors: string[] = [];
  readonly #requests = new Map<string, PageRequest>();
  readonly #stopListening: () => void;

  constructor(connection: DevToolsConnection, sessionId: string) {
    this.#connection = connection;
    this.#sessionId = sessionId;
    this.#stopListening = connection.listen((event) => {
      if (event.sessionId !== sessionId) return;
      const message = pageError(event);
      if (message !== undefined) this.#errors.push(message);
      this.#recordRequest(event);
    });
  }

  /** Uncaught exceptions, console errors and browser-reported errors (such as a blocked load). */
  get errors(): readonly string[] {
    return this.#errors;
  }

  /** Every request the page made, in order. */
  get requests(): readonly PageRequest[] {
    return [...this.#requests.values()];
  }

  #recordRequest({ method, params }: ProtocolEvent) {
    const id = params.requestId as string;
    if (method === "Network.requestWillBeSent") {
      const request = params.request as { url: string; method: string; postData?: string };
      this.#requests.set(id, {
        url: request.url,
        method: request.method,
        ...(request.postData === undefined ? {} : { body: request.postData }),
      });
    } else if (method === "Network.responseReceived") {
      const { status, mimeType } = params.response as { status: number; mimeType: string };
      const request = this.#requests.get(id);
      if (request !== undefined) request.response = { status, mimeType };
    }
  }

  #send(method: string, params: Record<string, unknown> = {}) {
    return this.#connection.send(method, params, this.#sessionId);
  }

  /** Loads `url` and waits for its load event. */
  async goto(url: string): Promise<void> {
    const loaded = Promise.withResolvers<void>();
    const stop = this.#connection.listen((event) => {
      if (event.sessionId === this.#sessionId && event.method === "Page.loadEventFired") {
        loaded.resolve();
      }
    });
    try {
      const { errorText } = await this.#send("Page.navigate", { url });
      if (errorText) throw new Error(`Cannot load ${url}: ${errorText}`);
      await loaded.promise;
    } finally {
      stop();
    }
  }

  /** The value of a JavaScript expression on the page (awaited when it is a promise). */
  async evaluate<T>(expression: string): Promise<T> {
    const { result, exceptionDetails } = await this.#send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    }) as { result: { value: T }; exceptionDetails?: { exception?: { description?: string } } };
    if (exceptionDetails) {
      throw new Error(`Page script failed: ${exceptionDetails.exception?.description}`);
    }
    return result.value;
  }

  /** Types text into the focused element, as the keyboard's input method would. */
  async type(text: string): Promise<void> {
    await this.#send("Input.insertText", { text });
  }

  /** Presses and releases Enter on the focused element. */
  async pressEnter(): Promise<void> {
    const key = { key: "Enter", code: "Enter", windowsVirtualKeyCode: 13 };
    await this.#send("Input.dispatchKeyEvent", { type: "keyDown", text: "\r", ...key });
    await this.#send("Input.dispatchKeyEvent", { type: "keyUp", ...key });
  }

  /** Clicks the middle of the first element matching a CSS selector with the mouse. */
  async click(selector: string): Promise<void> {
    const at = await this.evaluate<{ x: number; y: number } | null>(`(() => {
      const element = document.querySelector(${JSON.stringify(selector)});
      if (element === null) return null;
      const box = element.getBoundingClientRect();
      return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
    })()`);
    if (at === null) throw new Error(`No element matches ${selector}`);
    for (const type of ["mousePressed", "mouseReleased"]) {
      await this.#send("Input.dispatchMouseEvent", { type, ...at, button: "left", clickCount: 1 });
    }
  }

  /**
   * Waits until a JavaScript expression is truthy and returns its value. `timeoutMs` only bounds
   * a wait that would otherwise hang; it is not a measurement.
   */
  async waitFor<T>(expression: string, timeoutMs = 120_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await this.evaluate<T>(expression);
      if (value) return value;
      if (Date.now() > deadline) {
        throw new Error(
          `Waited ${timeoutMs / 1000} s for ${expression}; page errors: ` +
            JSON.stringify(this.#errors),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops collecting the page's errors. */
  [Symbol.dispose](): void {
    this.#stopListening();
  }
}

/** The text of an event that reports an error on a page, else undefined. */
function pageError({ method, params }: ProtocolEvent): string | undefined {
  if (method === "Runtime.exceptionThrown") {
    const details = params.exceptionDetails as {
      text: string;
      exception?: { description?: string };
    };
    return details.exception?.description ?? details.text;
  }
  if (method === "Runtime.consoleAPICalled" && params.type === "error") {
    return (params.args as { value?: unknown; description?: string }[])
      .map((arg) => String(arg.value ?? arg.description)).join(" ");
  }
  if (method === "Log.entryAdded") {
    const entry = params.entry as { level: string; text: string; url?: string };
    if (entry.level === "error") return entry.url ? `${entry.text} (${entry.url})` : entry.text;
  }
  return undefined;
}

/** A headless Chromium with a profile of its own, removed when the browser is disposed. */
export class Chromium implements AsyncDisposable {
  readonly #process: Deno.ChildProcess;
  readonly #stderrDrained: Promise<void>;
  readonly #connection: DevToolsConnection;
  readonly #profile: string;

  private constructor(
    process: Deno.ChildProcess,
    stderrDrained: Promise<void>,
    connection: DevToolsConnection,
    profile: string,
  ) {
    this.#process = process;
    this.#stderrDrained = stderrDrained;
    this.#connection = connection;
    this.#profile = profile;
  }

  /**
   * Starts the browser.
   *
   * @throws {Error} saying how to install Chromium when `chromium` is not on PATH
   */
  static async launch(): Promise<Chromium> {
    const profile = await Deno.makeTempDir({ prefix: "llamane-chromium-" });
    let process: Deno.ChildProcess;
    try {
      process = new Deno.Command("chromium", {
        args: [
          "--headless",
          // Tests run as root in containers, where Chromium's sandbox cannot start.
          "--no-sandbox",
          "--disable-gpu",
          "--no-first-run",
          "--remote-debugging-port=0",
          `--user-data-dir=${profile}`,
          "about:blank",
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      await Deno.remove(profile, { recursive: true });
      throw error instanceof Deno.errors.NotFound ? new Error(MISSING, { cause: error }) : error;
    }
    try {
      const { url, drained } = await devToolsUrl(process.stderr);
      return new Chromium(process, drained, await DevToolsConnection.open(url), profile);
    } catch (error) {
      process.kill("SIGKILL");
      await process.status;
      await Deno.remove(profile, { recursive: true });
      throw error;
    }
  }

  /** Opens a new tab on `url` and waits for it to load. */
  async open(url: string): Promise<BrowserPage> {
    const { targetId } = await this.#connection.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await this.#connection.send("Target.attachToTarget", {
      targetId,
      flatten: true,
    }) as { sessionId: string };
    const page = new BrowserPage(this.#connection, sessionId);
    for (const domain of ["Page", "Runtime", "Log", "Network"]) {
      await this.#connection.send(`${domain}.enable`, {}, sessionId);
    }
    await page.goto(url);
    return page;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    // Browser.close ends the renderer and GPU processes too, which a kill would orphan.
    await this.#connection.send("Browser.close").catch(() => {});
    await this.#connection.close();
    await this.#process.status;
    await this.#stderrDrained;
    await Deno.remove(this.#profile, { recursive: true });
  }
}

/**
 * Reads Chromium's stderr up to the line that gives its DevTools WebSocket URL, then keeps
 * draining it in the background so that the browser never blocks on a full pipe.
 */
async function devToolsUrl(
  stderr: ReadableStream<Uint8Array>,
): Promise<{ url: string; drained: Promise<void> }> {
  const reader = stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Chromium exited before opening DevTools:\n${text}`);
    text += value;
    const url = text.match(/DevTools listening on (ws:\/\/\S+)/)?.[1];
    if (url !== undefined) {
      const drained = (async () => {
        while (!(await reader.read()).done);
      })();
      return { url, drained };
    }
  }
}
