/**
 * The focus service as a page sees it: the focused instances, pushed over the `/active`
 * WebSocket (reconnected with backoff), and the API to change them. Shared by the web page and
 * the VR scene.
 *
 *   const focus = new FocusClient({ token });
 *   const stop = focus.subscribe((view) => render(view));  // now and on every change
 *   focus.start();
 *   await focus.focus("instance-1");   // single mode: the one; multi: added (the oldest leaves when full)
 *   await focus.set(["instance-0"]);  await focus.add(id);  await focus.remove(id);  await focus.clear();
 *   focus.view.active / .primary / .mode / .connected;  focus.isFocused(id);  focus.canChange
 *
 * `primary` is the most recently focused id: where the keyboard goes in multi focus. Changes
 * need the player token (`canChange`); without it the calls reject, and the page only follows.
 * A change made here is shown as soon as the service answers; every other change (another
 * browser, the EV3 brick, `loco focus set`, VR) arrives over the WebSocket.
 */
import { backoffDelay, type Backoff } from "./retry";

export type FocusMode = "single" | "multi";

export interface FocusView {
  active: string[];
  primary: string | null;
  mode: FocusMode;
  maxActive: number;
  /** The service's change counter (-1 before the first document). */
  seq: number;
  /** Whether the WebSocket is up (false: the view may be stale). */
  connected: boolean;
}

export interface FocusOptions {
  token?: string | null;
  /** Where the focus API is (default: this page's origin, the gateway passing it through). */
  base?: string;
  reconnect?: Backoff;
}

export class FocusError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

interface FocusDocument {
  active: string[];
  seq?: number;
  mode?: FocusMode;
  maxActive?: number;
}

export class FocusClient {
  view: FocusView = { active: [], primary: null, mode: "single", maxActive: 1, seq: -1, connected: false };
  private readonly token: string | null;
  private readonly base: string;
  private readonly reconnect: Backoff;
  private readonly listeners = new Set<(view: FocusView) => void>();
  private socket: WebSocket | null = null;
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(options: FocusOptions = {}) {
    this.token = options.token ?? null;
    this.base = options.base ?? "";
    this.reconnect = options.reconnect ?? { baseMs: 250, maxMs: 5000 };
  }

  get canChange(): boolean {
    return Boolean(this.token);
  }

  isFocused(id: string): boolean {
    return this.view.active.includes(id);
  }

  subscribe(listener: (view: FocusView) => void): () => void {
    this.listeners.add(listener);
    listener(this.view);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (!this.socket && !this.closed) this.open();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket?.close();
  }

  /** Focus `id` the way the service's mode means: the only one, or one more (oldest out when full). */
  focus(id: string): Promise<FocusView> {
    const { mode, active, maxActive } = this.view;
    if (mode === "single") return this.set([id]);
    if (active.includes(id)) return Promise.resolve(this.view);
    if (active.length >= maxActive) return this.set([...active.slice(active.length - maxActive + 1), id]);
    return this.add(id);
  }

  set(ids: string[]): Promise<FocusView> {
    return this.post("/api/active", { ids });
  }

  add(id: string): Promise<FocusView> {
    return this.post("/api/active/add", { id });
  }

  remove(id: string): Promise<FocusView> {
    return this.post("/api/active/remove", { id });
  }

  clear(): Promise<FocusView> {
    return this.set([]);
  }

  private async post(path: string, body: unknown): Promise<FocusView> {
    if (!this.token) throw new FocusError("changing focus needs the player token (this page is view-only)", 401);
    const reply = await fetch(`${this.base}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${this.token}` },
      body: JSON.stringify(body),
    });
    const document = await reply.json().catch(() => ({ error: `HTTP ${reply.status}` }));
    if (!reply.ok) throw new FocusError(document.error ?? `HTTP ${reply.status}`, reply.status);
    this.apply(document);
    return this.view;
  }

  private open(): void {
    const url = new URL(`${this.base}/active`, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onmessage = (event) => {
      this.failures = 0;
      try {
        this.apply(JSON.parse(event.data), true);
      } catch {
        // not a focus document: ignored
      }
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.emit({ ...this.view, connected: false });
      if (this.closed) return;
      this.failures++;
      this.timer = setTimeout(() => this.open(), backoffDelay(this.failures, this.reconnect));
    };
  }

  /** A focus document from the socket or an answer; an older one than shown is ignored. */
  private apply(document: FocusDocument, fromSocket = false): void {
    if (!Array.isArray(document.active)) return;
    const seq = typeof document.seq === "number" ? document.seq : this.view.seq + 1;
    // The first document on a (re)connected socket is the truth, whatever its seq; after that,
    // one older than what is shown (an answer overtaken by the socket) is ignored.
    if (seq <= this.view.seq && !(fromSocket && !this.view.connected)) return;
    const active = document.active.filter((id): id is string => typeof id === "string");
    this.emit({
      active,
      primary: active.length ? active[active.length - 1] : null,
      mode: document.mode === "multi" ? "multi" : "single",
      maxActive: document.maxActive ?? (document.mode === "multi" ? Math.max(1, active.length) : 1),
      seq,
      connected: fromSocket ? true : this.view.connected,
    });
  }

  private emit(view: FocusView): void {
    this.view = view;
    for (const listener of [...this.listeners]) listener(view);
  }
}
