/**
 * One instance's tile: its live picture at the guest's aspect ratio, name, what the stream is
 * doing (in words), its sound controls and, on demand, its stream statistics.
 */
import type { Sound, TileAudio } from "./audio";
import { GuestConnection, type Status, type StreamStats } from "./connection";

export interface Instance {
  id: string;
  name?: string;
  description?: string;
  status?: string;
  ready?: boolean;
  stream?: { state: string; width: number; height: number; error: string | null };
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

const ASK = "ask-the-browser";
const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/** What a person reads over a picture that is not live. */
export function describe(status: Status, instance: Instance, now = Date.now()): string {
  const booting = instance.ready === false || (instance.status && !/^(ready|running)$/i.test(instance.status));
  const next = status.nextTryAt === null ? "dialling now" : `next try in ${seconds(status.nextTryAt - now)} s`;
  switch (status.phase) {
    case "connecting":
      return booting ? `Guest is ${instance.status ?? "starting"}… connecting` : "Connecting…";
    case "waiting-first-frame":
      return status.guestUp === false || booting ? "Guest is starting… waiting for its screen" : "Waiting for the first picture…";
    case "live":
      return "";
    case "reconnecting":
      if (status.attempt === 0 && status.nextTryAt === null) return "Guest is restarting… the picture comes back by itself";
      return `Reconnecting — attempt ${status.attempt}, ${next}${status.reason ? ` (${status.reason})` : ""}`;
    case "offline":
      return `Offline${status.reason ? ` (${status.reason})` : ""} — ${next}`;
  }
}

export class Tile {
  readonly element = el("section", "tile");
  readonly screen = el("div", "screen");
  readonly guest: GuestConnection;
  readonly audio: TileAudio;
  private readonly overlay = el("div", "overlay");
  private readonly message = el("p", "message");
  private readonly retry = el("button", "retry", "Retry now");
  private readonly statusLine = el("span", "status");
  private readonly meter = el("meter", "level");
  private readonly mute = el("button", "mute");
  private readonly volume = el("input", "volume");
  private readonly output = el("select", "output");
  private readonly note = el("p", "note");
  private readonly statsBox = el("pre", "stats");
  private statsTimer: ReturnType<typeof setInterval> | null = null;

  constructor(public instance: Instance, readonly index: number, token: string | null, sound: Sound) {
    this.guest = new GuestConnection(instance.id, { token });
    this.audio = sound.tile(instance.id, this.guest.video, () => this.guest.stream);
    const { element, screen } = this;
    element.dataset.id = instance.id;
    element.tabIndex = 0; // takes keyboard focus when its guest is focused
    element.setAttribute("aria-label", instance.name ?? instance.id);

    this.retry.type = "button";
    this.retry.addEventListener("click", (event) => {
      event.stopPropagation();
      this.guest.retry();
    });
    this.overlay.append(this.message, this.retry);
    screen.append(this.guest.video, this.overlay, this.statsBox);

    const title = el("h2", "name", instance.name ?? instance.id);
    title.title = instance.description ?? instance.id;
    const head = el("header");
    head.append(title, this.statusLine);

    this.mute.type = "button";
    this.mute.addEventListener("click", () => this.audio.setMuted(!this.audio.muted));
    Object.assign(this.volume, { type: "range", min: "0", max: "1", step: "0.05" });
    this.volume.setAttribute("aria-label", "volume");
    this.volume.addEventListener("input", () => this.audio.setVolume(Number(this.volume.value)));
    Object.assign(this.meter, { min: 0, max: 1, low: 0.05, high: 0.7, optimum: 0.3, value: 0 });
    this.meter.title = "sound level of the stream";
    this.output.setAttribute("aria-label", "output device");
    this.output.addEventListener("change", () => {
      if (this.output.value === ASK) void sound.revealOutputs().catch(() => this.renderAudio(sound));
      else void this.audio.chooseOutput(this.output.value);
    });
    const controls = el("div", "sound");
    const labelled = (text: string, input: HTMLElement) => {
      const label = el("label", "", text);
      label.append(input);
      return label;
    };
    controls.append(this.mute, labelled("volume", this.volume), labelled("level", this.meter), this.output);
    element.append(screen, head, controls, this.note);

    this.guest.subscribe(() => this.render());
    this.guest.video.addEventListener("resize", () => this.render()); // the guest changed mode
    this.audio.subscribe(() => this.renderAudio(sound));
  }

  setInstance(instance: Instance): void {
    this.instance = instance;
    this.render();
  }

  /** Status text and data attributes; called on every change and each 250 ms for countdowns. */
  render(): void {
    const status = this.guest.status;
    const { element, screen } = this;
    element.dataset.phase = status.phase;
    element.dataset.player = String(status.player === true);
    const text = describe(status, this.instance);
    this.message.textContent = text;
    this.overlay.hidden = !text;
    this.retry.hidden = status.phase !== "offline" && status.phase !== "reconnecting";
    // The size shown is the picture's as decoded; the gateway's word stands in until one is.
    const video = this.guest.video;
    const [width, height] = video.videoWidth ? [video.videoWidth, video.videoHeight] : [status.width, status.height];
    this.statusLine.textContent = status.phase === "live"
      ? `live · ${width}×${height}${status.player === false ? " · view only" : ""}`
      : status.phase.replace(/-/g, " ");
    if (width && height) screen.style.aspectRatio = `${width} / ${height}`;
  }

  private renderAudio(sound: Sound): void {
    const audio = this.audio;
    this.mute.textContent = audio.muted ? "Unmute" : "Mute";
    this.mute.title = audio.muted ? "sound off: click to turn on" : "sound on: click to mute";
    this.mute.setAttribute("aria-pressed", String(audio.muted));
    this.volume.value = String(audio.volume);
    this.meter.value = audio.level;
    this.meter.dataset.level = audio.level.toFixed(3);
    const options = [{ id: "", label: "Default output" }, ...sound.outputs,
                     ...(sound.hidden ? [{ id: ASK, label: "Other outputs… (the browser asks first)" }] : [])];
    const wanted = options.some((o) => o.id === audio.chosen) ? audio.chosen : "";
    const listed = [...this.output.options].map((o) => `${o.value}\n${o.text}`).join("\n");
    if (listed !== options.map((o) => `${o.id}\n${o.label}`).join("\n")) {
      this.output.replaceChildren(...options.map((o) => new Option(o.label, o.id)));
    }
    this.output.value = wanted;
    this.note.textContent = audio.note;
    this.note.hidden = !audio.note;
  }

  /** Where a point of the page falls on the guest's screen, as fractions; null when off the picture. */
  position(clientX: number, clientY: number): [number, number] | null {
    const video = this.guest.video;
    const box = video.getBoundingClientRect();
    const width = video.videoWidth || this.guest.status.width || 4;
    const height = video.videoHeight || this.guest.status.height || 3;
    const scale = Math.min(box.width / width, box.height / height); // object-fit: contain
    const left = box.left + (box.width - width * scale) / 2;
    const top = box.top + (box.height - height * scale) / 2;
    const x = (clientX - left) / (width * scale);
    const y = (clientY - top) / (height * scale);
    return x >= 0 && x <= 1 && y >= 0 && y <= 1 ? [x, y] : null;
  }

  showStats(on: boolean): void {
    this.statsBox.hidden = !on;
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
    if (!on) return;
    const update = async () => {
      const stats = await this.guest.stats();
      this.statsBox.textContent = stats ? formatStats(stats) : "no stream";
    };
    void update();
    this.statsTimer = setInterval(() => void update(), 1000);
  }
}

export function formatStats(s: StreamStats): string {
  return [
    `${s.fps.toFixed(1)} fps · ${s.width}×${s.height}`,
    `${s.bitrateKbps.toFixed(0)} kbit/s · loss ${s.packetLossPct.toFixed(1)} %`,
    `round trip ${s.rttMs === null ? "–" : `${s.rttMs.toFixed(0)} ms`}`,
    `${s.codec.replace(/^video\//, "") || "?"} · ${s.decoder || "decoder ?"}`,
    `${s.framesDecoded} frames · ${s.freezeCount} freezes`,
  ].join("\n");
}
