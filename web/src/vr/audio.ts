// Spatial sound: each guest's sound comes from its screen (HRTF PannerNode), the listener is the
// player's head, focused guests play at full gain and the others at the ambient level (the web
// client's rule too).
//
// One path per stream: stream → MediaStreamAudioSourceNode → gain → panner → master → speakers.
// The stream's media element stays muted (Chromium feeds WebAudio silence from a remote track
// unless a media element plays it too, and an unmuted one would be a second, unplaced copy).
import * as THREE from "three";

const GAIN_TIME_CONSTANT = 0.015; // s: a focus change is at 95 % of its new gain 45 ms later

interface Voice {
  stream: MediaStream | null;
  source: MediaStreamAudioSourceNode | null;
  gain: GainNode;
  panner: PannerNode;
}

export class SpatialAudio {
  readonly context = new AudioContext({ latencyHint: "interactive" });
  private readonly master = this.context.createGain();
  /** The mix at the listener, left and right (for the level meters and the scene's probe). */
  readonly ears: [AnalyserNode, AnalyserNode];
  private readonly voices = new Map<string, Voice>();

  constructor(public ambient = 0.2) {
    const splitter = this.context.createChannelSplitter(2);
    this.ears = [this.context.createAnalyser(), this.context.createAnalyser()];
    this.master.connect(this.context.destination);
    this.master.connect(splitter);
    this.ears.forEach((ear, channel) => {
      ear.fftSize = 2048;
      splitter.connect(ear, channel);
    });
  }

  /** Start sound: needs a user gesture (a click, entering VR) unless the browser allows autoplay. */
  resume(): Promise<void> {
    return this.context.resume();
  }

  add(id: string, position: THREE.Vector3): void {
    const panner = new PannerNode(this.context, {
      panningModel: "HRTF", distanceModel: "inverse", refDistance: 1, maxDistance: 20, rolloffFactor: 1,
    });
    const gain = this.context.createGain();
    gain.gain.value = 1; // nothing focused yet
    gain.connect(panner).connect(this.master);
    this.voices.set(id, { stream: null, source: null, gain, panner });
    this.place(id, position);
  }

  /** Takes the guest's current stream (a redial brings a new one); a stream without sound yet waits. */
  attach(id: string, stream: MediaStream | null): void {
    const voice = this.voices.get(id);
    if (!voice || (voice.stream === stream && voice.source)) return;
    if (!stream || stream.getAudioTracks().length === 0) return;
    voice.source?.disconnect();
    voice.stream = stream;
    voice.source = this.context.createMediaStreamSource(stream);
    voice.source.connect(voice.gain);
  }

  place(id: string, position: THREE.Vector3): void {
    const { panner } = this.voices.get(id)!;
    const now = this.context.currentTime;
    panner.positionX.setValueAtTime(position.x, now);
    panner.positionY.setValueAtTime(position.y, now);
    panner.positionZ.setValueAtTime(position.z, now);
  }

  /** Focused guests at full gain, the others at the ambient level; with nothing focused, all full. */
  focus(active: ReadonlySet<string>): void {
    const now = this.context.currentTime;
    for (const [id, voice] of this.voices) {
      voice.gain.gain.cancelScheduledValues(now);
      voice.gain.gain.setTargetAtTime(active.size === 0 || active.has(id) ? 1 : this.ambient, now, GAIN_TIME_CONSTANT);
    }
  }

  /** The listener at the head, looking where it looks (every rendered frame). */
  listen(head: THREE.Object3D): void {
    const { listener } = this.context;
    const position = new THREE.Vector3(), quaternion = new THREE.Quaternion();
    head.matrixWorld.decompose(position, quaternion, new THREE.Vector3());
    const forward = new THREE.Vector3(0, 0, -1).applyQuaternion(quaternion);
    const up = new THREE.Vector3(0, 1, 0).applyQuaternion(quaternion);
    const now = this.context.currentTime;
    listener.positionX.setValueAtTime(position.x, now);
    listener.positionY.setValueAtTime(position.y, now);
    listener.positionZ.setValueAtTime(position.z, now);
    listener.forwardX.setValueAtTime(forward.x, now);
    listener.forwardY.setValueAtTime(forward.y, now);
    listener.forwardZ.setValueAtTime(forward.z, now);
    listener.upX.setValueAtTime(up.x, now);
    listener.upY.setValueAtTime(up.y, now);
    listener.upZ.setValueAtTime(up.z, now);
  }

  /** Each guest's gain and panner position now, as the graph has them. */
  voicesNow(): Record<string, { gain: number; position: [number, number, number]; hasSound: boolean }> {
    const out: Record<string, { gain: number; position: [number, number, number]; hasSound: boolean }> = {};
    for (const [id, { gain, panner, source }] of this.voices) {
      out[id] = {
        gain: gain.gain.value,
        position: [panner.positionX.value, panner.positionY.value, panner.positionZ.value],
        hasSound: source !== null,
      };
    }
    return out;
  }

  /** The loudest RMS of the mix at each ear over ``ms`` milliseconds. */
  async levels(ms: number): Promise<{ left: number; right: number }> {
    const data = new Float32Array(this.ears[0].fftSize);
    const peak = [0, 0];
    const until = performance.now() + ms;
    while (performance.now() < until) {
      this.ears.forEach((ear, i) => {
        ear.getFloatTimeDomainData(data);
        peak[i] = Math.max(peak[i], Math.sqrt(data.reduce((sum, v) => sum + v * v, 0) / data.length));
      });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return { left: peak[0], right: peak[1] };
  }
}
