// The VR scene: every guest's screen around the player, controllers and a desktop mouse acting on
// them through the controllers' bindings, the focus menu, and spatial sound that follows focus.
//
// Input goes where a player expects: keys to the primary focused guest (the one focused last),
// the pointer to the focused screen a laser (or the mouse) is on. Each button press sends one key
// down when the button goes down and one key up when it comes up, to the guest that got the down.
import * as THREE from "three";
import { storeAmbient } from "../audio";
import type { GuestConnection, Status } from "../connection";
import type { FocusClient, FocusView } from "../focus";
import { keysymOf, KEYSYM } from "../input";
import { SpatialAudio } from "./audio";
import { ButtonEdges, type Binding, type Button } from "./bindings";
import { layout } from "./layout";
import { Menu, type MenuPick } from "./menu";
import { Screen } from "./screen";

export interface SceneGuest {
  id: string;
  name: string;
  connection: GuestConnection;
}

type Hit =
  | { kind: "screen"; screen: Screen; spot: [number, number]; point: THREE.Vector3 }
  | { kind: "menu"; pick: MenuPick; point: THREE.Vector3 };

/** A pointing device: a controller's target ray, or the desktop mouse through the camera. */
interface Pointer {
  hit: Hit | null;
  buttons: number; // the guest pointer buttons this pointer holds down
  pressedOn: Screen | null; // where those buttons went down
  spot: [number, number]; // where on that screen the guest's pointer was last put
  lastSent: string; // the last pointer message sent, so an unmoved laser sends nothing
}

interface Hand extends Pointer {
  controller: THREE.Group;
  source: XRInputSource | null;
  edges: ButtonEdges;
  laser: THREE.Line;
  cursor: THREE.Mesh;
}

const LASER_LENGTH = 8;
const MOUSE_DRAG_PIXELS = 4; // a mouse that moved less than this between down and up clicked
const LOOK_SPEED = 0.004; // radians per pixel of mouse drag

export class VRScene {
  readonly renderer: THREE.WebGLRenderer;
  readonly scene = new THREE.Scene();
  readonly camera = new THREE.PerspectiveCamera(70, 1, 0.05, 100);
  readonly screens: Screen[] = [];
  readonly menu = new Menu();
  readonly audio: SpatialAudio;
  readonly hands: Hand[] = [];
  zoomed = false;
  focusAppliedAt = 0; // Date.now() when the last focus change reached the screens and the sound
  rendered = 0; // frames drawn
  private readonly statuses = new Map<string, Status>();
  private readonly mouse: Pointer = { hit: null, buttons: 0, pressedOn: null, spot: [0.5, 0.5], lastSent: "" };
  private readonly heldKeys = new Map<string, { guest: GuestConnection; keysym: number }>(); // per button
  private readonly raycaster = new THREE.Raycaster();
  private frameWaiters: ((canvas: HTMLCanvasElement) => void)[] = [];

  constructor(
    container: HTMLElement,
    readonly guests: SceneGuest[],
    readonly focus: FocusClient,
    readonly bindings: Map<Button, Binding>,
    ambient: number,
  ) {
    this.audio = new SpatialAudio(ambient);
    this.renderer = new THREE.WebGLRenderer({ antialias: hardwareGL() });
    this.renderer.setPixelRatio(window.devicePixelRatio);
    this.renderer.xr.enabled = true;
    this.renderer.xr.setReferenceSpaceType("local-floor");
    container.append(this.renderer.domElement);
    this.scene.background = new THREE.Color(0x0d1117);
    this.scene.add(this.floor(), this.menu.mesh);
    this.camera.position.set(0, 1.6, 0);
    this.scene.add(this.camera);

    for (const guest of guests) {
      const screen = new Screen(guest.id, guest.name, guest.connection.video);
      this.screens.push(screen);
      this.scene.add(screen.group);
      this.audio.add(guest.id, new THREE.Vector3());
      guest.connection.subscribe((status) => this.statusChanged(guest, status));
    }
    for (const index of [0, 1]) this.hands.push(this.hand(index));
    focus.subscribe((view) => this.focusChanged(view));
    this.desktopControls();
    window.addEventListener("resize", () => this.resize());
    this.resize();
    this.renderer.setAnimationLoop((time, frame) => this.frame(time, frame));
  }

  // -- focus and status ------------------------------------------------------------------------

  private focusChanged(view: FocusView): void {
    this.focusAppliedAt = Date.now();
    const active = new Set(view.active);
    for (const screen of this.screens) screen.setFocused(active.has(screen.id));
    this.audio.focus(active);
    this.relayout();
    this.updateMenu();
  }

  private statusChanged(guest: SceneGuest, status: Status): void {
    this.statuses.set(guest.id, status);
    const screen = this.screens.find((s) => s.id === guest.id)!;
    screen.setStatus(describe(status));
    this.updateMenu();
  }

  private relayout(): void {
    const placements = layout(this.screens.map((s) => s.id), new Set(this.focus.view.active), this.zoomed);
    placements.forEach((placement, i) => {
      const screen = this.screens[i];
      screen.place(placement);
      this.audio.place(screen.id, screen.group.position);
      screen.setStatus(describe(this.statuses.get(screen.id)));
    });
  }

  private updateMenu(): void {
    this.menu.update(this.guests.map((g) => ({
      id: g.id, name: g.name, status: describe(this.statuses.get(g.id)), focused: this.focus.isFocused(g.id),
    })), this.focus.view.mode, this.audio.ambient);
  }

  // -- actions ---------------------------------------------------------------------------------

  /** The guest keys go to: the primary focused one. */
  private keyTarget(): GuestConnection | null {
    const id = this.focus.view.primary ?? this.focus.view.active[0];
    return this.guests.find((g) => g.id === id)?.connection ?? null;
  }

  private connectionOf(screen: Screen): GuestConnection {
    return this.guests.find((g) => g.id === screen.id)!.connection;
  }

  /** A bound button went down (``down``) or up, on a pointer aimed at ``pointer.hit``. */
  private button(slot: string, binding: Binding | undefined, down: boolean, pointer: Pointer): void {
    if (!binding) return;
    if ("key" in binding) return this.key(slot, binding.keysym, down);
    switch (binding.action) {
      case "click": return this.click(slot, down, pointer);
      case "menu": if (down) this.toggleMenu(); return;
      case "next-instance": if (down) void this.step(1); return;
      case "previous-instance": if (down) void this.step(-1); return;
      case "zoom": if (down) { this.zoomed = !this.zoomed; this.relayout(); } return;
    }
  }

  private key(slot: string, keysym: number, down: boolean): void {
    if (down) {
      const guest = this.keyTarget();
      if (guest && guest.sendKey(keysym, true)) this.heldKeys.set(slot, { guest, keysym });
    } else {
      const held = this.heldKeys.get(slot);
      this.heldKeys.delete(slot);
      held?.guest.sendKey(held.keysym, false);
    }
  }

  /** Trigger or mouse button: on a menu row, pick it; on a focused screen, click there; on an
   *  unfocused one, focus it; on nothing, Enter to the focused guest. */
  private click(slot: string, down: boolean, pointer: Pointer): void {
    const hit = pointer.hit;
    if (!down) {
      if (pointer.pressedOn) {
        const [x, y] = hit?.kind === "screen" && hit.screen === pointer.pressedOn ? hit.spot : pointer.spot;
        pointer.buttons = 0;
        this.connectionOf(pointer.pressedOn).sendPointer(0, x, y);
        pointer.pressedOn = null;
      }
      return this.key(slot, KEYSYM.Return, false);
    }
    if (hit?.kind === "menu") return void this.pick(hit.pick);
    if (hit?.kind === "screen") {
      if (!hit.screen.focused) return void this.focus.focus(hit.screen.id).catch(report);
      const [x, y] = hit.spot;
      if (this.connectionOf(hit.screen).sendPointer(1, x, y)) {
        pointer.buttons = 1;
        pointer.pressedOn = hit.screen;
        pointer.spot = [x, y];
        pointer.lastSent = "";
      }
      return;
    }
    this.key(slot, KEYSYM.Return, true);
  }

  private async pick(choice: MenuPick): Promise<void> {
    if (choice === null) return;
    if (choice === "close") return this.menu.hide();
    if (choice === "quieter" || choice === "louder") return this.setAmbient(this.audio.ambient + (choice === "louder" ? 0.1 : -0.1));
    const { id } = this.guests[choice];
    const change = this.focus.view.mode === "multi" && this.focus.isFocused(id) ? this.focus.remove(id) : this.focus.focus(id);
    await change.catch(report);
  }

  /** The unfocused guests' level, kept for this browser (the web client's ambient setting too). */
  private setAmbient(level: number): void {
    this.audio.ambient = Math.round(Math.min(1, Math.max(0, level)) * 20) / 20;
    storeAmbient(this.audio.ambient);
    this.audio.focus(new Set(this.focus.view.active));
    this.updateMenu();
  }

  toggleMenu(): void {
    if (this.menu.open) this.menu.hide();
    else this.menu.show(this.head());
  }

  /** Moves the primary focus to the next (``+1``) or previous guest in instance order; in multi
   *  focus the other focused guests stay. */
  private async step(direction: 1 | -1): Promise<void> {
    const ids = this.guests.map((g) => g.id);
    const { primary, active, mode } = this.focus.view;
    const from = ids.indexOf(primary ?? "");
    const next = ids[from < 0 ? (direction > 0 ? 0 : ids.length - 1) : (from + direction + ids.length) % ids.length];
    const others = mode === "multi" ? active.filter((id) => id !== primary && id !== next) : [];
    await this.focus.set([...others, next]).catch(report);
  }

  // -- pointing --------------------------------------------------------------------------------

  private hand(index: number): Hand {
    const controller = this.renderer.xr.getController(index);
    const laser = new THREE.Line(
      new THREE.BufferGeometry().setFromPoints([new THREE.Vector3(), new THREE.Vector3(0, 0, -1)]),
      new THREE.LineBasicMaterial({ color: 0x58a6ff }),
    );
    laser.scale.z = LASER_LENGTH;
    const cursor = new THREE.Mesh(new THREE.SphereGeometry(0.012), new THREE.MeshBasicMaterial({ color: 0xffffff }));
    cursor.visible = false;
    controller.add(laser);
    this.scene.add(controller, cursor);
    const hand: Hand = { controller, source: null, edges: new ButtonEdges(), laser, cursor,
                         hit: null, buttons: 0, pressedOn: null, spot: [0.5, 0.5], lastSent: "" };
    controller.addEventListener("connected", (event) => { hand.source = (event as unknown as { data: XRInputSource }).data; });
    controller.addEventListener("disconnected", () => { hand.source = null; hand.cursor.visible = false; });
    return hand;
  }

  /** What a ray hits first: the open menu, else a screen's picture. */
  private cast(origin: THREE.Vector3, direction: THREE.Vector3): Hit | null {
    this.raycaster.set(origin, direction);
    if (this.menu.open) {
      const [onMenu] = this.raycaster.intersectObject(this.menu.mesh, false);
      if (onMenu?.uv) return { kind: "menu", pick: this.menu.pick(onMenu.uv), point: onMenu.point };
    }
    const [onScreen] = this.raycaster.intersectObjects(this.screens.map((s) => s.picture), false);
    if (!onScreen?.uv) return null;
    return { kind: "screen", screen: onScreen.object.userData.screen as Screen, spot: Screen.spot(onScreen.uv),
             point: onScreen.point };
  }

  /** Moves the guest's pointer to where ``pointer`` is, when that is on a focused screen. */
  private track(pointer: Pointer): void {
    const hit = pointer.hit;
    if (this.menu.open) this.menu.hover(hit?.kind === "menu" ? this.menu.rowOf(hit.pick) : -1);
    if (hit?.kind !== "screen" || !hit.screen.focused) return;
    if (pointer.pressedOn && pointer.pressedOn !== hit.screen) return; // a drag stays on its screen
    const [x, y] = hit.spot;
    const message = `${hit.screen.id} ${pointer.buttons} ${x.toFixed(4)} ${y.toFixed(4)}`;
    if (message === pointer.lastSent) return;
    if (this.connectionOf(hit.screen).sendPointer(pointer.buttons, x, y)) {
      pointer.lastSent = message;
      pointer.spot = [x, y];
    }
  }

  private updateHand(hand: Hand): void {
    const gamepad = hand.source?.gamepad;
    if (!hand.source || !gamepad) return;
    const origin = new THREE.Vector3().setFromMatrixPosition(hand.controller.matrixWorld);
    const direction = new THREE.Vector3(0, 0, -1).transformDirection(hand.controller.matrixWorld);
    hand.hit = this.cast(origin, direction);
    hand.cursor.visible = hand.hit !== null;
    if (hand.hit) hand.cursor.position.copy(hand.hit.point);
    hand.laser.scale.z = hand.hit ? hand.hit.point.distanceTo(origin) : LASER_LENGTH;
    this.track(hand);
    const side = hand.source.handedness === "left" ? "left" : "right";
    const { down, up } = hand.edges.update(side, gamepad.buttons.map((b) => b.pressed),
                                           [gamepad.axes[2] ?? 0, gamepad.axes[3] ?? 0]);
    for (const button of up) this.button(`${side}:${button}`, this.bindings.get(button), false, hand);
    for (const button of down) this.button(`${side}:${button}`, this.bindings.get(button), true, hand);
  }

  // -- desktop: mouse look, mouse pointing, keyboard -------------------------------------------

  private desktopControls(): void {
    const canvas = this.renderer.domElement;
    let from: { x: number; y: number } | null = null, dragged = false;
    const mouseRay = (event: PointerEvent) => {
      const rect = canvas.getBoundingClientRect();
      const ndc = new THREE.Vector2(((event.clientX - rect.left) / rect.width) * 2 - 1,
                                    -((event.clientY - rect.top) / rect.height) * 2 + 1);
      this.raycaster.setFromCamera(ndc, this.camera);
      this.mouse.hit = this.cast(this.raycaster.ray.origin.clone(), this.raycaster.ray.direction.clone());
    };
    canvas.addEventListener("pointerdown", (event) => {
      void this.audio.resume();
      from = { x: event.clientX, y: event.clientY };
      dragged = false;
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (from && (event.buttons & 1)) {
        const dx = event.clientX - from.x, dy = event.clientY - from.y;
        if (dragged || Math.hypot(dx, dy) > MOUSE_DRAG_PIXELS) {
          dragged = true;
          this.camera.rotation.order = "YXZ";
          this.camera.rotation.y += dx * LOOK_SPEED;
          this.camera.rotation.x = THREE.MathUtils.clamp(this.camera.rotation.x + dy * LOOK_SPEED, -1.4, 1.4);
          from = { x: event.clientX, y: event.clientY };
          return;
        }
      }
      mouseRay(event);
      this.track(this.mouse);
    });
    canvas.addEventListener("pointerup", (event) => {
      if (from && !dragged) { // a click, not a look: the trigger's binding, down and up
        mouseRay(event);
        const trigger = this.bindings.get("trigger");
        this.button("mouse", trigger, true, this.mouse);
        this.button("mouse", trigger, false, this.mouse);
      }
      from = null;
    });
    window.addEventListener("keydown", (event) => {
      void this.audio.resume();
      const keysym = keysymOf(event);
      if (keysym === null || this.renderer.xr.isPresenting) return;
      event.preventDefault(); // the guest's Tab, F5, Ctrl+W: not the browser's
      if (!event.repeat || !this.heldKeys.has(`key:${event.code}`)) this.key(`key:${event.code}`, keysym, true);
    });
    window.addEventListener("keyup", (event) => {
      if (this.heldKeys.has(`key:${event.code}`)) { event.preventDefault(); this.key(`key:${event.code}`, 0, false); }
    });
    window.addEventListener("blur", () => {
      for (const slot of [...this.heldKeys.keys()]) this.key(slot, 0, false);
    });
  }

  // -- rendering -------------------------------------------------------------------------------

  /** Enter immersive VR (needs a user gesture on a real headset). */
  async enterVR(): Promise<void> {
    await this.audio.resume();
    const session = await navigator.xr!.requestSession("immersive-vr", { optionalFeatures: ["local-floor"] });
    await this.renderer.xr.setSession(session);
  }

  /** The head: the XR camera while presenting, else the desktop camera. */
  head(): THREE.Camera {
    return this.renderer.xr.isPresenting ? this.renderer.xr.getCamera() : this.camera;
  }

  /** What the scene shows and plays now, as plain data (for diagnostics and the browser tests):
   *  each screen's frames, focus, size, and where its picture is on the canvas (the left eye's
   *  view while presenting), the controllers, the menu, and each guest's gain and panner. */
  snapshot() {
    const presenting = this.renderer.xr.isPresenting;
    const canvas = this.renderer.domElement;
    const eye = presenting ? this.renderer.xr.getCamera().cameras[0] : this.camera;
    // The first view's viewport, in canvas pixels from the top left (WebGL counts from the bottom).
    const view = presenting ? (eye as THREE.PerspectiveCamera & { viewport: THREE.Vector4 }).viewport
      : new THREE.Vector4(0, 0, canvas.width, canvas.height);
    const box = [view.x, canvas.height - view.y - view.w, view.z, view.w];
    const voices = this.audio.voicesNow();
    return {
      presenting,
      canvas: [canvas.width, canvas.height],
      zoomed: this.zoomed,
      focus: this.focus.view,
      focusAppliedAt: this.focusAppliedAt,
      rendered: this.rendered,
      multisampled: this.renderer.getContext().getContextAttributes()?.antialias ?? false,
      controllers: this.hands.map((h) => ({ handedness: h.source?.handedness ?? null, hit: describeHit(h.hit) })),
      menu: { open: this.menu.open, mode: this.menu.mode, entries: this.menu.entries, hovered: this.menu.hovered,
              rows: this.menu.rowCentres(), ambient: this.menu.ambientControls() },
      head: new THREE.Vector3().setFromMatrixPosition(this.head().matrixWorld).toArray(),
      audio: { state: this.audio.context.state, ambient: this.audio.ambient },
      screens: this.screens.map((screen) => {
        const world = new THREE.Vector3();
        screen.picture.getWorldPosition(world);
        // The picture's corners: top left, top right, bottom right, bottom left.
        const corners = [[-0.5, 0.5], [0.5, 0.5], [0.5, -0.5], [-0.5, -0.5]].map(([x, y]) =>
          screen.picture.localToWorld(new THREE.Vector3(x, y, 0)));
        const onCanvas = corners.map((corner) => {
          const p = corner.clone().project(eye);
          return [box[0] + ((p.x + 1) / 2) * box[2], box[1] + ((1 - p.y) / 2) * box[3]];
        });
        return {
          id: screen.id, frames: screen.frames, focused: screen.focused, scale: screen.group.scale.x,
          position: world.toArray(), corners: corners.map((c) => c.toArray()), canvasCorners: onCanvas,
          status: describe(this.statuses.get(screen.id)),
          voice: voices[screen.id],
        };
      }),
    };
  }

  /** Resolves with the canvas right after the next frame is drawn (readable then). */
  nextFrame(): Promise<HTMLCanvasElement> {
    return new Promise((resolve) => this.frameWaiters.push(resolve));
  }

  private frame(_time: number, frame?: XRFrame): void {
    if (frame) for (const hand of this.hands) this.updateHand(hand);
    this.renderer.render(this.scene, this.camera);
    this.rendered++;
    this.audio.listen(this.head());
    // A redial brings a new stream, and a stream's sound track may come after its picture.
    for (const guest of this.guests) this.audio.attach(guest.id, guest.connection.stream);
    const waiters = this.frameWaiters;
    this.frameWaiters = [];
    for (const resolve of waiters) resolve(this.renderer.domElement);
  }

  private resize(): void {
    if (this.renderer.xr.isPresenting) return;
    this.camera.aspect = window.innerWidth / window.innerHeight;
    this.camera.updateProjectionMatrix();
    this.renderer.setSize(window.innerWidth, window.innerHeight);
  }

  private floor(): THREE.Object3D {
    const grid = new THREE.GridHelper(20, 40, 0x30363d, 0x161b22);
    return grid;
  }
}

/** Whether WebGL runs on a GPU. Software WebGL (SwiftShader, llvmpipe) gets no multisampling:
 *  with it the scene drew 8 frames a second instead of 22 on this project's 2-core test machine,
 *  and focus changes waited behind the frames. */
function hardwareGL(): boolean {
  const gl = document.createElement("canvas").getContext("webgl2");
  const info = gl?.getExtension("WEBGL_debug_renderer_info");
  const renderer = gl && info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : "";
  gl?.getExtension("WEBGL_lose_context")?.loseContext();
  return !/swiftshader|llvmpipe|softpipe|software/i.test(renderer);
}

function describeHit(hit: Hit | null) {
  if (!hit) return null;
  return hit.kind === "screen" ? { screen: hit.screen.id, spot: hit.spot } : { menu: hit.pick };
}

function describe(status: Status | undefined): string {
  if (!status) return "connecting";
  if (status.phase === "reconnecting") {
    const wait = status.nextTryAt ? Math.max(0, Math.round((status.nextTryAt - Date.now()) / 1000)) : 0;
    return `reconnecting (try ${status.attempt + 1}${wait ? `, in ${wait} s` : ""})`;
  }
  if (status.guestUp === false) return "guest restarting";
  if (status.phase === "waiting-first-frame") return "waiting for the picture";
  return status.player === false ? `${status.phase}, view only` : status.phase;
}

function report(error: unknown): void {
  console.warn("focus change refused:", error instanceof Error ? error.message : error);
}
