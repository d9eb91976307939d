/**
 * A client of the DevTools protocol (Chromium's, which Deno's inspector speaks too) over Deno's
 * WebSocket: numbered commands answered by their results, and events passed to listeners.
 *
 * @module
 */

/** A DevTools protocol event: its method, parameters, and the page session it comes from. */
export interface ProtocolEvent {
  readonly method: string;
  readonly params: Record<string, unknown>;
  readonly sessionId?: string;
}

/**
 * One WebSocket to a DevTools endpoint (a browser, or a Deno process started with `--inspect`)
 * carrying commands and events; a browser's pages are reached through it by their session ids.
 */
export class DevToolsConnection {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, PromiseWithResolvers<Record<string, unknown>>>();
  readonly #listeners = new Set<(event: ProtocolEvent) => void>();
  #nextId = 1;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (message) => this.#receive(JSON.parse(message.data));
    socket.onclose = () => {
      for (const call of this.#pending.values()) {
        call.reject(new Error("DevTools connection closed"));
      }
      this.#pending.clear();
    };
  }

  /** Connects to a DevTools WebSocket URL. */
  static async open(url: string): Promise<DevToolsConnection> {
    const socket = new WebSocket(url);
    const opened = Promise.withResolvers<void>();
    socket.onopen = () => opened.resolve();
    socket.onerror = () => opened.reject(new Error(`Cannot connect to DevTools at ${url}`));
    await opened.promise;
    return new DevToolsConnection(socket);
  }

  #receive(
    message: {
      id?: number;
      result?: Record<string, unknown>;
      error?: { message: string };
    } & Partial<ProtocolEvent>,
  ) {
    if (message.id === undefined) {
      for (const listener of this.#listeners) listener(message as ProtocolEvent);
      return;
    }
    const call = this.#pending.get(message.id);
    this.#pending.delete(message.id);
    if (message.error) call?.reject(new Error(`DevTools: ${message.error.message}`));
    else call?.resolve(message.result ?? {});
  }

  /** Sends a command (to a page when `sessionId` is given) and returns its result. */
  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const call = Promise.withResolvers<Record<string, unknown>>();
    this.#pending.set(id, call);
    this.#socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return call.promise;
  }

  /** Calls `listener` with every event until the returned function is called. */
  listen(listener: (event: ProtocolEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Closes the WebSocket; commands still waiting fail. */
  async close(): Promise<void> {
    if (this.#socket.readyState === WebSocket.CLOSED) return;
    const closed = Promise.withResolvers<void>();
    this.#socket.addEventListener("close", () => closed.resolve());
    this.#socket.close();
    await closed.promise;
  }
}
