/**
 * One guest's stream from the gateway, shared by the web page and the VR scene.
 *
 *   const guest = new GuestConnection("instance-0", { token });
 *   tile.append(guest.video);               // exists at once, before any track arrives
 *   const stop = guest.subscribe((status) => render(status));  // now and on every change
 *   guest.start();                          // dials, and dials again by itself until close()
 *   guest.sendKey(0xff0d, true);            // input, when status.player (docs/streaming.md)
 *   guest.sendPointer(1, 0.5, 0.5);  guest.sendWheel(1, 0, 0.5, 0.5);  guest.releaseAll();
 *   guest.stream                            // the MediaStream now shown (audio too): it is a new
 *                                           // one after a redial, and subscribers are told
 *   await guest.stats();                    // fps, bitrate, round trip, loss, decoder
 *   guest.retry();  guest.close();
 *
 * `status.phase`: "connecting" (offer sent) → "waiting-first-frame" (media flowing, nothing
 * decoded yet) → "live" (frames decoded). A drop — the peer connection failing or closing, or
 * no frame decoded for `frozenMs` although the gateway says the guest is up — leads to
 * "reconnecting" (`attempt`, `nextTryAt`) and a new dial; after `offlineAfter` failed dials in a
 * row, "offline": still dialled, but slowly, until `retry()` asks for one at once.
 *
 * A redial is seamless: aiortc has no ICE restart, so every dial is a new peer connection, but
 * the old one and its picture stay on `video` until the new one has decoded a frame.
 * A guest the gateway has lost (restarting) keeps its peer connection: the gateway resumes the
 * picture on it, and `status.guestUp` is false meanwhile.
 */
import { backoffDelay, type Backoff } from "./retry";
import { keyMessage, pointerMessage, releaseAllMessage, wheelMessage } from "./input";

export type Phase = "connecting" | "waiting-first-frame" | "live" | "reconnecting" | "offline";

export interface Status {
  phase: Phase;
  /** Failed dials since the picture was last live (0 while live or on the first dial). */
  attempt: number;
  /** `Date.now()` of the next dial, while reconnecting or offline. */
  nextTryAt: number | null;
  /** Why the picture is not live (the last failure), "" when live. */
  reason: string;
  /** Whether this page may send input (the gateway's answer), null before the first answer. */
  player: boolean | null;
  /** Whether the gateway has the guest's screen (its data channel says), null before it says. */
  guestUp: boolean | null;
  /** The guest's screen size as the gateway last reported it (0 before). */
  width: number;
  height: number;
}

export interface StreamStats {
  fps: number;
  bitrateKbps: number;
  rttMs: number | null;
  packetLossPct: number;
  decoder: string;
  codec: string;
  framesDecoded: number;
  freezeCount: number;
  width: number;
  height: number;
}

export interface ConnectionOptions {
  /** The player token (see token.ts); without it the stream is view-only. */
  token?: string | null;
  /** Where the gateway is (default: this page's origin). */
  base?: string;
  /** No decoded frame for this long while connected and the guest is up: the stream is lost. */
  frozenMs?: number;
  /** Waiting for a first frame longer than this (guest up) counts as a failed dial. */
  firstFrameMs?: number;
  /** Redial pacing while the gateway does not answer (cheap: a refused connection). */
  unreachableBackoff?: Backoff;
  /** Redial pacing after other failures (ICE failed, no picture, a full gateway). */
  failureBackoff?: Backoff;
  /** Failed dials in a row before the status says offline. */
  offlineAfter?: number;
  /** Time between dials once offline. */
  offlineBackoff?: Backoff;
}

const DEFAULTS = {
  frozenMs: 2500,
  firstFrameMs: 10000,
  unreachableBackoff: { baseMs: 250, maxMs: 1000 },
  failureBackoff: { baseMs: 500, maxMs: 8000 },
  offlineAfter: 30,
  offlineBackoff: { baseMs: 10000, maxMs: 10000 },
} satisfies Omit<ConnectionOptions, "token" | "base">;

const WATCH_MS = 250;

class DialError extends Error {
  constructor(message: string, readonly unreachable: boolean) {
    super(message);
  }
}

/** One peer connection to the gateway; a GuestConnection has one, two while it redials. */
class Dial {
  readonly pc: RTCPeerConnection;
  readonly channel: RTCDataChannel;
  readonly stream = new MediaStream();
  framesDecoded = 0;
  framesChangedAt = performance.now();
  connectedAt = 0;
  closed = false;
  // The gateway's last "state" message on this dial's data channel.
  player: boolean | null = null;
  guestUp: boolean | null = null;
  size: [number, number] = [0, 0];

  constructor(iceServers: RTCIceServer[]) {
    this.pc = new RTCPeerConnection({ iceServers });
    this.pc.addTransceiver("video", { direction: "recvonly" });
    this.pc.addTransceiver("audio", { direction: "recvonly" });
    this.channel = this.pc.createDataChannel("input");
    this.channel.binaryType = "arraybuffer";
    this.pc.ontrack = (event) => {
      event.receiver.jitterBufferTarget = 0; // show each frame as soon as it is decoded
      this.stream.addTrack(event.track);
    };
  }

  /** framesDecoded from the video receiver; remembers when it last moved. */
  async poll(): Promise<number> {
    const receiver = this.pc.getReceivers().find((r) => r.track.kind === "video");
    if (!receiver || this.closed) return this.framesDecoded;
    let decoded = this.framesDecoded;
    (await receiver.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp") decoded = r.framesDecoded ?? decoded;
    });
    if (decoded !== this.framesDecoded) {
      this.framesDecoded = decoded;
      this.framesChangedAt = performance.now();
    }
    return decoded;
  }

  close(): void {
    this.closed = true;
    this.channel.close();
    this.pc.close();
  }
}

function gathered(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs); // send what was gathered so far
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

export class GuestConnection {
  readonly id: string;
  /** The picture (and sound: muted until the page unmutes it). Stable for the connection's life. */
  readonly video: HTMLVideoElement;
  status: Status = { phase: "connecting", attempt: 0, nextTryAt: null, reason: "", player: null,
                     guestUp: null, width: 0, height: 0 };

  private readonly options: Required<Omit<ConnectionOptions, "token" | "base">>;
  private readonly token: string | null;
  private readonly base: string;
  private readonly listeners = new Set<(status: Status) => void>();
  private shown: Dial | null = null; // whose picture is on `video`
  private pending: Dial | null = null; // a redial not yet decoding
  private timer: ReturnType<typeof setTimeout> | null = null;
  private watch: ReturnType<typeof setInterval> | null = null;
  private failures = 0;
  private generation = 0;
  private dialling = false;
  private resumeAfter = 0; // frames decoded when the gateway lost the guest
  private readonly held = new Set<number>(); // keysyms this page holds down on the guest
  private closed = false;
  private lastStats: { at: number; bytes: number; frames: number; lost: number; received: number } | null = null;

  constructor(id: string, options: ConnectionOptions = {}) {
    this.id = id;
    this.token = options.token ?? null;
    this.base = options.base ?? "";
    this.options = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as
      typeof this.options;
    this.video = document.createElement("video");
    this.video.muted = true; // plays without a gesture; the page unmutes it after one
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.disablePictureInPicture = true;
  }

  /** The MediaStream on `video` now (null before the first dial has tracks). */
  get stream(): MediaStream | null {
    return (this.video.srcObject as MediaStream | null) ?? null;
  }

  subscribe(listener: (status: Status) => void): () => void {
    this.listeners.add(listener);
    listener(this.status);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (this.closed || this.watch) return;
    this.watch = setInterval(() => void this.check(), WATCH_MS);
    void this.dial();
  }

  /** Dial now (the offline tile's button), whatever the backoff said. */
  retry(): void {
    if (this.closed) return;
    this.failures = 0;
    void this.dial();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.watch) clearInterval(this.watch);
    this.pending?.close();
    this.shown?.close();
    this.pending = this.shown = null;
    this.video.srcObject = null;
  }

  // -- input: only a player's is taken by the gateway -------------------------------------------

  sendKey(keysym: number, down: boolean): boolean {
    if (down) this.held.add(keysym);
    else this.held.delete(keysym);
    return this.send(keyMessage(keysym, down));
  }

  /** `buttons` 1 left, 2 middle, 4 right; `x`, `y` fractions of the guest's screen. */
  sendPointer(buttons: number, x: number, y: number): boolean {
    return this.send(pointerMessage(buttons, x, y));
  }

  sendWheel(dy: number, dx: number, x: number, y: number): boolean {
    return this.send(wheelMessage(dy, dx, x, y));
  }

  /** Releases every key and button this page holds on the guest (on blur, focus moving away). */
  releaseAll(): boolean {
    this.held.clear();
    return this.send(releaseAllMessage());
  }

  private send(message: ArrayBuffer): boolean {
    const channel = this.shown?.channel;
    if (!channel || channel.readyState !== "open" || !this.status.player) return false;
    channel.send(message);
    return true;
  }

  // -- stats -------------------------------------------------------------------------------------

  async stats(): Promise<StreamStats | null> {
    const dial = this.shown;
    if (!dial) return null;
    const report = await dial.pc.getStats();
    let video: any = null;
    let audio: any = null;
    let pair: any = null;
    const codecs = new Map<string, string>();
    report.forEach((r: any) => {
      if (r.type === "inbound-rtp" && r.kind === "video") video = r;
      else if (r.type === "inbound-rtp" && r.kind === "audio") audio = r;
      else if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r;
      else if (r.type === "codec") codecs.set(r.id, r.mimeType);
    });
    if (!video) return null;
    const now = performance.now();
    const bytes = (video.bytesReceived ?? 0) + (audio?.bytesReceived ?? 0);
    const lost = (video.packetsLost ?? 0) + (audio?.packetsLost ?? 0);
    const received = (video.packetsReceived ?? 0) + (audio?.packetsReceived ?? 0);
    const last = this.lastStats;
    const seconds = last ? (now - last.at) / 1000 : 0;
    const stats: StreamStats = {
      fps: last && seconds > 0 ? (video.framesDecoded - last.frames) / seconds : (video.framesPerSecond ?? 0),
      bitrateKbps: last && seconds > 0 ? ((bytes - last.bytes) * 8) / seconds / 1000 : 0,
      rttMs: pair?.currentRoundTripTime != null ? pair.currentRoundTripTime * 1000 : null,
      packetLossPct: last && received + lost > last.received + last.lost
        ? (100 * (lost - last.lost)) / (received + lost - last.received - last.lost) : 0,
      decoder: video.decoderImplementation ?? "",
      codec: codecs.get(video.codecId) ?? "",
      framesDecoded: video.framesDecoded ?? 0,
      freezeCount: video.freezeCount ?? 0,
      width: video.frameWidth ?? 0,
      height: video.frameHeight ?? 0,
    };
    this.lastStats = { at: now, bytes, frames: video.framesDecoded ?? 0, lost, received };
    return stats;
  }

  // -- the state machine -------------------------------------------------------------------------

  private update(change: Partial<Status>): void {
    const next = { ...this.status, ...change };
    if (Object.keys(next).every((k) => next[k as keyof Status] === this.status[k as keyof Status])) return;
    this.status = next;
    for (const listener of [...this.listeners]) listener(next);
  }

  private async iceServers(): Promise<RTCIceServer[]> {
    // Asked each dial: TURN credentials from the gateway are short-lived.
    const reply = await fetch(`${this.base}/api/config/webrtc`, { cache: "no-store" });
    if (!reply.ok) throw new DialError(`ICE configuration: HTTP ${reply.status}`, reply.status >= 502);
    return ((await reply.json()).iceServers ?? []) as RTCIceServer[];
  }

  private async dial(): Promise<void> {
    const generation = ++this.generation; // a newer dial (retry) supersedes this one
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending?.close();
    this.pending = null;
    this.dialling = true;
    const redial = this.shown !== null;
    this.update(redial ? { nextTryAt: null } : { phase: "connecting", nextTryAt: null });
    let dial: Dial | null = null;
    try {
      const iceServers = await this.iceServers().catch((e) => {
        throw e instanceof DialError ? e : new DialError(`gateway unreachable (${e.message ?? e})`, true);
      });
      if (generation !== this.generation) return;
      dial = new Dial(iceServers);
      this.follow(dial);
      if (redial) this.pending = dial;
      else this.show(dial);
      await dial.pc.setLocalDescription(await dial.pc.createOffer());
      await gathered(dial.pc, 2000);
      const headers: Record<string, string> = { "Content-Type": "application/json" };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      let reply: Response;
      try {
        reply = await fetch(`${this.base}/stream/${encodeURIComponent(this.id)}/offer`, {
          method: "POST", headers, body: JSON.stringify(dial.pc.localDescription),
          signal: AbortSignal.timeout(15000),
        });
      } catch (e: any) {
        throw new DialError(`gateway unreachable (${e.message ?? e})`, true);
      }
      const answer = await reply.json().catch(() => ({ error: `HTTP ${reply.status}` }));
      if (!reply.ok) throw new DialError(answer.error ?? `HTTP ${reply.status}`, reply.status >= 502);
      if (generation !== this.generation) return;
      await dial.pc.setRemoteDescription(answer);
      if (redial) dial.player = Boolean(answer.player);
      else this.update({ player: Boolean(answer.player), phase: "waiting-first-frame" });
    } catch (e: any) {
      if (this.closed || generation !== this.generation) return;
      if (dial && dial === this.pending) {
        this.pending = null;
        dial.close();
      }
      this.dialling = false;
      this.failed(e instanceof DialError ? e : new DialError(String(e?.message ?? e), false));
    } finally {
      if (generation === this.generation) this.dialling = false;
    }
  }

  /** Watch one dial's peer connection and data channel. */
  private follow(dial: Dial): void {
    dial.pc.addEventListener("track", () => {
      if (dial === this.shown) this.video.srcObject = dial.stream; // the element takes the new track
    });
    dial.pc.addEventListener("connectionstatechange", () => {
      if (dial.pc.connectionState === "connected" && !dial.connectedAt) dial.connectedAt = performance.now();
      if (dial.closed || (dial.pc.connectionState !== "failed" && dial.pc.connectionState !== "closed")) return;
      this.lost(dial, `peer connection ${dial.pc.connectionState}`);
    });
    dial.channel.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      const state = JSON.parse(event.data);
      if (state.type !== "state") return;
      dial.player = Boolean(state.player);
      if (dial.guestUp !== Boolean(state.connected)) dial.framesChangedAt = performance.now(); // frozen counts anew
      dial.guestUp = Boolean(state.connected);
      if (state.width && state.height) dial.size = [state.width, state.height];
      if (dial === this.shown) this.reflect(dial);
    });
    dial.channel.addEventListener("close", () => {
      if (!dial.closed) this.lost(dial, "the gateway closed the stream");
    });
  }

  /** The shown dial's word on the guest, in the status: a guest the gateway lost shows as reconnecting. */
  private reflect(dial: Dial): void {
    const change: Partial<Status> = { guestUp: dial.guestUp, width: dial.size[0], height: dial.size[1] };
    if (dial.player !== null) change.player = dial.player;
    if (dial.guestUp === false && this.status.phase === "live") {
      this.resumeAfter = dial.framesDecoded;
      Object.assign(change, { phase: "reconnecting", attempt: 0, nextTryAt: null,
                              reason: "the gateway is dialling the guest again" });
    }
    this.update(change);
  }

  /** Put a dial's picture on the video element (the old one, if any, goes). */
  private show(dial: Dial): void {
    const old = this.shown;
    this.shown = dial;
    if (this.pending === dial) this.pending = null;
    this.video.srcObject = dial.stream;
    this.lastStats = null;
    if (old && old !== dial) {
      // The gateway lets go of a closed stream's keys: a key still held (Shift, say) is pressed
      // again on the new one, ahead of anything sent after it.
      for (const keysym of this.held) this.send(keyMessage(keysym, true));
      old.close();
    }
    this.reflect(dial);
    for (const listener of [...this.listeners]) listener(this.status); // `stream` changed
  }

  /** A dial that was up went down. */
  private lost(dial: Dial, reason: string): void {
    if (this.closed) return;
    if (dial === this.pending) {
      this.pending = null;
      dial.close();
      this.failed(new DialError(reason, false));
    } else if (dial === this.shown && !this.pending && !this.timer && !this.dialling) {
      this.failures = 0;
      this.schedule(reason, false);
    }
  }

  private failed(error: DialError): void {
    this.failures++;
    this.schedule(error.message, error.unreachable);
  }

  private schedule(reason: string, unreachable: boolean): void {
    if (this.closed) return;
    const offline = this.failures >= this.options.offlineAfter;
    const pacing = offline ? this.options.offlineBackoff
      : unreachable ? this.options.unreachableBackoff : this.options.failureBackoff;
    const delay = backoffDelay(Math.max(1, this.failures), pacing);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.dial(), delay);
    this.update({ phase: offline ? "offline" : "reconnecting", attempt: this.failures + (offline ? 0 : 1),
                  nextTryAt: Date.now() + delay, reason });
  }

  /** Every WATCH_MS: a redial whose picture decodes takes over; a frozen picture counts as lost. */
  private async check(): Promise<void> {
    const now = performance.now();
    const pending = this.pending;
    if (pending) {
      if ((await pending.poll()) > 0 && this.pending === pending) {
        this.show(pending);
        this.failures = 0;
        this.update({ phase: "live", attempt: 0, reason: "", nextTryAt: null });
      } else if (pending.connectedAt && now - pending.connectedAt > this.options.firstFrameMs &&
                 pending.guestUp !== false) {
        this.lost(pending, "no picture from the new stream");
      }
      return;
    }
    const shown = this.shown;
    if (!shown || shown.closed || this.timer || this.dialling) return;
    const decoded = await shown.poll();
    const { phase } = this.status;
    if (phase !== "live" && decoded > this.resumeAfter && shown.guestUp !== false) {
      this.failures = 0;
      this.resumeAfter = 0;
      this.update({ phase: "live", attempt: 0, reason: "", nextTryAt: null });
    } else if (shown.guestUp !== false && shown.connectedAt && this.shown === shown && !this.timer) {
      const since = now - (decoded > 0 ? Math.max(shown.framesChangedAt, shown.connectedAt) : shown.connectedAt);
      if (decoded > 0 && since > this.options.frozenMs) {
        this.lost(shown, `no picture for ${(since / 1000).toFixed(1)} s`);
      } else if (decoded === 0 && since > this.options.firstFrameMs) {
        this.failures++;
        this.schedule("no picture from the stream", false);
      }
    }
  }
}
