/**
 * Each tile's sound: played by the connection's own video element (so one audio path per
 * stream), with its volume, mute and output device, and a level meter that reads the stream
 * itself through WebAudio.
 *
 *   const sound = new Sound();                         // one per page
 *   sound.onStart(() => ...); sound.started            // after the first click or key press
 *   const audio = sound.tile(id, guest.video, () => guest.stream);
 *   audio.setVolume(0.8); audio.setMuted(true); audio.setFocusGain(0.2);
 *   await audio.chooseOutput(deviceId);                // remembered per instance
 *   audio.level                                        // RMS 0..1, updated ~15 times a second
 *   audio.subscribe((a) => render(a))                  // volume, muted, output, note, level
 *
 * The browser lets a page play sound only after a user gesture; until then every element stays
 * muted and the page says so. Output devices are listed again on `devicechange`; a remembered
 * device that is not there plays on the default output, with a note, and is taken again when it
 * comes back.
 */
const STORE = "loco.audio.";
const AMBIENT_KEY = "loco.ambient";

/** The unfocused guests' level (0..1): one setting per browser, for the web client and the VR scene. */
export function storedAmbient(): number {
  const level = Number(localStorage.getItem(AMBIENT_KEY) ?? 0.2);
  return Number.isFinite(level) ? Math.min(1, Math.max(0, level)) : 0.2;
}

export function storeAmbient(level: number): void {
  localStorage.setItem(AMBIENT_KEY, String(level));
}

export interface OutputDevice {
  id: string;
  label: string;
}

interface Saved {
  volume: number;
  muted: boolean;
  sinkId: string;
  sinkLabel: string;
}

export class Sound {
  context: AudioContext | null = null;
  outputs: OutputDevice[] = [];
  /** Whether the browser lists outputs without naming them (no permission yet). */
  hidden = false;
  private readonly tiles = new Set<TileAudio>();
  private readonly startListeners: (() => void)[] = [];

  constructor() {
    const start = () => {
      window.removeEventListener("pointerdown", start, true);
      window.removeEventListener("keydown", start, true);
      void this.start();
    };
    window.addEventListener("pointerdown", start, true);
    window.addEventListener("keydown", start, true);
    navigator.mediaDevices?.addEventListener("devicechange", () => void this.listOutputs());
    void this.listOutputs();
    setInterval(() => this.tiles.forEach((t) => t.measure()), 66);
  }

  get started(): boolean {
    return this.context?.state === "running";
  }

  onStart(listener: () => void): void {
    this.startListeners.push(listener);
  }

  tile(id: string, element: HTMLMediaElement, stream: () => MediaStream | null): TileAudio {
    const tile = new TileAudio(this, id, element, stream);
    this.tiles.add(tile);
    void tile.applyOutput();
    return tile;
  }

  /** The first gesture: WebAudio may run and elements may play sound from now on. */
  private async start(): Promise<void> {
    this.context ??= new AudioContext();
    await this.context.resume();
    this.tiles.forEach((t) => t.apply());
    this.startListeners.forEach((l) => l());
  }

  /** Browsers name output devices only once the page may use a microphone (Chromium's
   * speaker-selection rule): ask once, drop the microphone at once, list again. */
  async revealOutputs(): Promise<void> {
    const microphone = await navigator.mediaDevices.getUserMedia({ audio: true });
    microphone.getTracks().forEach((track) => track.stop());
    await this.listOutputs();
  }

  async listOutputs(): Promise<void> {
    const devices = (await navigator.mediaDevices?.enumerateDevices?.()) ?? [];
    this.hidden = devices.some((d) => d.kind === "audiooutput" && !d.deviceId);
    this.outputs = devices
      .filter((d) => d.kind === "audiooutput" && d.deviceId && d.deviceId !== "default")
      .map((d, i) => ({ id: d.deviceId, label: d.label || `Output ${i + 1}` }));
    for (const tile of this.tiles) await tile.applyOutput();
  }
}

export class TileAudio {
  level = 0;
  /** The device actually playing ("" = the default output). */
  output = "";
  /** Why the chosen output is not in use, "" when it is. */
  note = "";
  focusGain = 1;
  private saved: Saved;
  private source: { stream: MediaStream; node: MediaStreamAudioSourceNode; analyser: AnalyserNode } | null = null;
  private readonly samples = new Float32Array(1024);
  private readonly listeners = new Set<(audio: TileAudio) => void>();

  constructor(private readonly sound: Sound, readonly id: string, private readonly element: HTMLMediaElement,
              private readonly stream: () => MediaStream | null) {
    let stored: Partial<Saved> = {};
    try {
      stored = JSON.parse(localStorage.getItem(STORE + id) ?? "{}");
    } catch {
      // a damaged entry: start from the defaults
    }
    this.saved = { volume: 1, muted: false, sinkId: "", sinkLabel: "", ...stored };
    this.apply();
  }

  get volume(): number { return this.saved.volume; }
  get muted(): boolean { return this.saved.muted; }
  /** The output chosen for this instance ("" = the default), whether or not it is there. */
  get chosen(): string { return this.saved.sinkId; }

  subscribe(listener: (audio: TileAudio) => void): () => void {
    this.listeners.add(listener);
    listener(this);
    return () => this.listeners.delete(listener);
  }

  setVolume(volume: number): void {
    this.save({ volume: Math.min(1, Math.max(0, volume)) });
  }

  setMuted(muted: boolean): void {
    this.save({ muted });
  }

  /** Focus: 1 for a focused guest (or when nothing is focused), the ambient level otherwise. */
  setFocusGain(gain: number): void {
    this.focusGain = gain;
    this.apply();
  }

  async chooseOutput(sinkId: string): Promise<void> {
    const label = this.sound.outputs.find((o) => o.id === sinkId)?.label ?? "";
    this.save({ sinkId, sinkLabel: label });
    await this.applyOutput();
  }

  private save(change: Partial<Saved>): void {
    this.saved = { ...this.saved, ...change };
    localStorage.setItem(STORE + this.id, JSON.stringify(this.saved));
    this.apply();
  }

  /** Volume and mute onto the element (muted until the page may play sound). */
  apply(): void {
    this.element.volume = this.saved.volume * this.focusGain;
    this.element.muted = this.saved.muted || !this.sound.started;
    this.emit();
  }

  /** The chosen output when it is there, else the default one, saying so. */
  async applyOutput(): Promise<void> {
    const wanted = this.saved.sinkId;
    const present = !wanted || this.sound.outputs.some((o) => o.id === wanted);
    const target = present ? wanted : "";
    this.note = present ? "" : `${this.saved.sinkLabel || "The chosen output"} is not connected: playing on the default output`;
    const element = this.element as HTMLMediaElement & { sinkId?: string; setSinkId?: (id: string) => Promise<void> };
    if (element.setSinkId && element.sinkId !== target) {
      try {
        await element.setSinkId(target);
      } catch (error: any) {
        await element.setSinkId("");
        this.note = `${this.saved.sinkLabel || "The chosen output"} cannot be used (${error.name}): playing on the default output`;
      }
    } else if (!element.setSinkId && wanted) {
      this.note = "This browser cannot choose an output per tile";
    }
    this.output = element.sinkId ?? "";
    this.emit();
  }

  /** RMS of the stream's sound now; the analyser follows the stream across redials. */
  measure(): void {
    const context = this.sound.context;
    const stream = this.stream();
    if (!context || !stream || !stream.getAudioTracks().length) return;
    if (this.source?.stream !== stream) {
      this.source?.node.disconnect();
      const node = context.createMediaStreamSource(stream);
      const analyser = context.createAnalyser();
      analyser.fftSize = this.samples.length;
      node.connect(analyser);
      this.source = { stream, node, analyser };
    }
    this.source.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const v of this.samples) sum += v * v;
    const level = Math.sqrt(sum / this.samples.length);
    if (Math.abs(level - this.level) > 0.002) {
      this.level = level;
      this.emit();
    }
  }

  private emit(): void {
    for (const listener of [...this.listeners]) listener(this);
  }
}
