/**
 * The web client: a tile per instance of /api/instances, focus that follows the focus service
 * (click, hotkeys, or any other client), and play — keyboard and pointer to the focused guest.
 */
import "./style.css";
import { Sound, storeAmbient, storedAmbient } from "./audio";
import { FocusClient, type FocusView } from "./focus";
import { matchHotkey, parseHotkeys, type Binding, type HotkeyAction } from "./hotkeys";
import { buttonsOf, keysymOf } from "./input";
import { backoffDelay } from "./retry";
import { Tile, type Instance } from "./tile";
import { playerToken } from "./token";

const ZOOM_MIN = 0.5, ZOOM_MAX = 2, ZOOM_STEP = 0.1;
const ZOOM_KEY = "loco.zoom";

const token = playerToken();
const focus = new FocusClient({ token });
const sound = new Sound();
const tiles = new Map<string, Tile>();
const order: Tile[] = [];
const grid = document.getElementById("tiles")!;
const bar = document.getElementById("bar")!;
let bindings: Binding[] = [];
let ambient = storedAmbient();
let zoom = Number(localStorage.getItem(ZOOM_KEY) ?? 1);
let target: Tile | null = null; // where keyboard and pointer go
let pointer: { x: number; y: number } | null = null; // the player's pointer on the page
const held = new Map<string, { tile: Tile; keysym: number }>(); // key code → what its press sent

// -- the bar: who this page is, focus mode, sound, settings ---------------------------------------

const role = Object.assign(document.createElement("span"), { className: "role" });
role.textContent = token ? "player" : "view only: watching, no input or focus changes";
role.dataset.player = String(Boolean(token));
const mode = Object.assign(document.createElement("span"), { className: "mode" });
const link = Object.assign(document.createElement("span"), { className: "link" });
const soundHint = Object.assign(document.createElement("button"), { className: "sound-hint", type: "button" });
soundHint.textContent = "Sound starts with your first click or key press";
sound.onStart(() => {
  soundHint.hidden = true;
  document.body.dataset.sound = "on";
});
const ambientInput = Object.assign(document.createElement("input"),
  { type: "range", min: "0", max: "1", step: "0.05", value: String(ambient), className: "ambient" });
ambientInput.title = "volume of unfocused guests";
ambientInput.addEventListener("input", () => {
  ambient = Number(ambientInput.value);
  storeAmbient(ambient);
  applyFocus(focus.view);
});
const ambientLabel = document.createElement("label");
ambientLabel.append("ambient ", ambientInput);
const statsToggle = Object.assign(document.createElement("button"), { type: "button", className: "stats-toggle" });
statsToggle.textContent = "stats";
statsToggle.setAttribute("aria-pressed", "false");
statsToggle.addEventListener("click", () => {
  const on = statsToggle.getAttribute("aria-pressed") !== "true";
  statsToggle.setAttribute("aria-pressed", String(on));
  tiles.forEach((t) => t.showStats(on));
});
// Full screen with the keyboard locked: only then may a page have the keys the browser keeps for
// itself (Ctrl+1..9 switching tabs, Ctrl+W, Alt+Tab on some systems); Esc held down leaves.
const fullscreen = Object.assign(document.createElement("button"), { type: "button", className: "fullscreen" });
fullscreen.title = "full screen, the keyboard locked to the page (hold Esc to leave)";
let keysLocked = false;
function showFullscreen(): void {
  const on = document.fullscreenElement !== null;
  if (!on && keysLocked) (navigator as any).keyboard?.unlock?.();
  keysLocked &&= on;
  fullscreen.textContent = on ? `Leave full screen${keysLocked ? " · keys locked" : ""}` : "Full screen";
  fullscreen.setAttribute("aria-pressed", String(on));
}
fullscreen.addEventListener("click", async () => {
  if (document.fullscreenElement) return void document.exitFullscreen();
  try {
    await document.documentElement.requestFullscreen();
    await (navigator as any).keyboard.lock();
    keysLocked = true;
  } catch {
    say("The browser keeps its own shortcuts here: Ctrl+1..9 may switch tabs");
  }
  showFullscreen();
});
document.addEventListener("fullscreenchange", showFullscreen);
showFullscreen();
const vrLink = Object.assign(document.createElement("a"), { className: "vr-link", textContent: "VR scene" });
vrLink.href = "vr"; // in this tab, whose sessionStorage holds the player's token (see token.ts)
vrLink.title = "the guests around you in WebXR; mouse look without a headset";
const title = Object.assign(document.createElement("h1"), { textContent: "loco.lan" });
bar.append(title, role, mode, link, ambientLabel, statsToggle, fullscreen, vrLink, soundHint);
const toast = Object.assign(document.createElement("p"), { className: "toast", hidden: true });
document.body.append(toast);
let toastTimer: ReturnType<typeof setTimeout> | undefined;
function say(text: string): void {
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toast.hidden = true), 4000);
}

// -- focus ---------------------------------------------------------------------------------------

function applyFocus(view: FocusView): void {
  document.body.dataset.focusMode = view.mode;
  mode.textContent = view.mode === "multi" ? `multi focus (up to ${view.maxActive})` : "single focus";
  link.textContent = view.connected ? "" : "focus service unreachable: reconnecting…";
  link.hidden = view.connected;
  const anyFocused = view.active.some((id) => tiles.has(id));
  for (const tile of order) {
    const focused = view.active.includes(tile.instance.id);
    tile.element.classList.toggle("focused", focused);
    tile.element.dataset.focused = String(focused);
    tile.element.style.order = focused ? String(view.active.indexOf(tile.instance.id) - 100) : String(tile.index);
    tile.audio.setFocusGain(!anyFocused || focused ? 1 : ambient);
  }
  // The keyboard follows focus to the newest focused guest; a focused one this page picked keeps
  // it until focus moves on.
  const moved = view.primary !== lastPrimary;
  lastPrimary = view.primary;
  const keep = target !== null && view.active.includes(target.instance.id) && !moved;
  snap(keep ? target : tiles.get(view.primary ?? "") ?? null);
  grid.dataset.seq = String(view.seq);
}
let lastPrimary: string | null = null;

/** Keyboard and pointer go to `tile`: keys held on the old one are let go, the guest's pointer is
 * put where the player's pointer is over the tile (or at its centre, see below). */
function snap(tile: Tile | null): void {
  if (tile === target) return;
  releaseHeld();
  target?.element.classList.remove("target");
  target = tile;
  document.body.dataset.target = tile?.instance.id ?? "";
  if (!tile) return;
  tile.element.classList.add("target");
  if (!tile.element.contains(document.activeElement)) tile.element.focus({ preventScroll: true });
  // The guest's pointer goes under this player's pointer; to the centre only when this page asked
  // for the change (another player's page, whose pointer is elsewhere, leaves it alone).
  const over = pointer && tile.position(pointer.x, pointer.y);
  const [x, y] = over ?? (performance.now() - changedHere < 3000 ? [0.5, 0.5] : [-1, -1]);
  if (x >= 0) tile.guest.sendPointer(0, x, y);
}
let changedHere = -Infinity; // when this page last asked for a focus change

async function changeFocus(change: () => Promise<unknown>): Promise<void> {
  if (!focus.canChange) {
    say("View only: this page has no player token, so it cannot change focus");
    return;
  }
  changedHere = performance.now();
  try {
    await change();
  } catch (error: any) {
    say(`Focus not changed: ${error.message}`);
  }
}

function perform(action: HotkeyAction): void {
  if (action.kind === "focus") {
    if (tiles.has(action.id)) void changeFocus(() => focus.focus(action.id));
  } else if (action.kind === "zoom") {
    zoom = Math.round(Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, zoom + action.step * ZOOM_STEP)) * 10) / 10;
    localStorage.setItem(ZOOM_KEY, String(zoom));
    const empty = Object.assign(document.createElement("p"), { className: "empty" });
grid.before(empty);
grid.style.setProperty("--zoom", String(zoom));
    grid.dataset.zoom = String(zoom);
  } else if (order.length) {
    // From the guest the keyboard is on (or the focused one), not from the first tile.
    const from = target ?? tiles.get(focus.view.primary ?? "") ?? null;
    const index = from ? order.indexOf(from) : -1;
    const next = order[(index + action.step + order.length) % order.length];
    if (focus.view.mode === "multi" && focus.isFocused(next.instance.id)) snap(next);
    else void changeFocus(() => focus.focus(next.instance.id));
  }
}

// -- keyboard: hotkeys first, the rest to the guest --------------------------------------------------

const inControl = (node: EventTarget | null) =>
  node instanceof HTMLElement && node.closest("input, select, textarea, button:not(.tile)") !== null;

window.addEventListener("keydown", (event) => {
  const action = matchHotkey(bindings, event);
  if (action) {
    event.preventDefault(); // Ctrl+1..9 would switch browser tabs, Tab move the page's focus
    event.stopPropagation();
    if (!event.repeat || action.kind === "zoom") perform(action);
    return;
  }
  if (!target || inControl(event.target) || target.guest.status.player !== true) return;
  const keysym = keysymOf(event);
  if (keysym === null) return;
  event.preventDefault(); // the guest's keys: no scrolling, no browser shortcuts it can give up
  held.set(event.code || event.key, { tile: target, keysym });
  target.guest.sendKey(keysym, true);
}, true);

window.addEventListener("keyup", (event) => {
  const press = held.get(event.code || event.key);
  if (!press) return;
  event.preventDefault();
  held.delete(event.code || event.key);
  press.tile.guest.sendKey(press.keysym, false); // the keysym its press sent, whatever Shift did since
}, true);

function releaseHeld(): void {
  const touched = new Set([...held.values()].map((p) => p.tile));
  held.clear();
  if (target) touched.add(target);
  touched.forEach((tile) => tile.guest.releaseAll());
}
window.addEventListener("blur", releaseHeld);
document.addEventListener("visibilitychange", () => document.hidden && releaseHeld());

// -- pointer: a click on an unfocused tile focuses it, on a focused one plays ---------------------------

window.addEventListener("pointermove", (event) => (pointer = { x: event.clientX, y: event.clientY }), true);

function bindPointer(tile: Tile): void {
  const { screen } = tile;
  const send = (event: PointerEvent | WheelEvent) => {
    if (!focus.isFocused(tile.instance.id) || tile.guest.status.player !== true) return false;
    const at = tile.position(event.clientX, event.clientY);
    if (!at) return false;
    if (event instanceof WheelEvent) tile.guest.sendWheel(Math.sign(event.deltaY), Math.sign(event.deltaX), ...at);
    else tile.guest.sendPointer(buttonsOf(event.buttons), ...at);
    return true;
  };
  screen.addEventListener("pointerdown", (event) => {
    if (!focus.isFocused(tile.instance.id)) {
      event.preventDefault();
      void changeFocus(() => focus.focus(tile.instance.id));
      return;
    }
    if (target !== tile) snap(tile); // multi focus: this one takes the keyboard
    screen.setPointerCapture(event.pointerId);
    if (send(event)) event.preventDefault();
  });
  screen.addEventListener("pointermove", (event) => void send(event));
  screen.addEventListener("pointerup", (event) => void send(event));
  screen.addEventListener("wheel", (event) => send(event) && event.preventDefault(), { passive: false });
  screen.addEventListener("contextmenu", (event) => event.preventDefault());
}

// -- start: instances, hotkeys, focus ---------------------------------------------------------------

async function getJson(path: string): Promise<any> {
  const reply = await fetch(path, { cache: "no-store" });
  if (!reply.ok) throw new Error(`${path}: HTTP ${reply.status}`);
  return reply.json();
}

function addTiles(instances: Instance[]): void {
  for (const instance of instances) {
    const known = tiles.get(instance.id);
    if (known) {
      known.setInstance(instance);
      continue;
    }
    const tile = new Tile(instance, order.length, token, sound);
    tiles.set(instance.id, tile);
    order.push(tile);
    bindPointer(tile);
    grid.append(tile.element);
    tile.guest.start();
  }
}

async function load(attempt = 1): Promise<void> {
  try {
    const [instances, hotkeys] = await Promise.all([getJson("/api/instances"), getJson("/api/config/hotkeys")]);
    bindings = parseHotkeys(hotkeys);
    addTiles(instances.instances ?? []);
    empty.textContent = order.length ? "" : "No instances yet: the gateway's instances.json lists none.";
  } catch (error: any) {
    empty.textContent = `The gateway does not answer (${error.message}); trying again…`;
    setTimeout(() => void load(attempt + 1), backoffDelay(attempt, { baseMs: 500, maxMs: 5000 }));
    return;
  }
  focus.subscribe(applyFocus);
  focus.start();
  // Booting guests: their instance status, refreshed; countdowns ticking.
  setInterval(() => void getJson("/api/instances").then((r) => addTiles(r.instances ?? []), () => undefined), 5000);
  setInterval(() => order.forEach((t) => t.render()), 250);
}

const empty = Object.assign(document.createElement("p"), { className: "empty" });
grid.before(empty);
grid.style.setProperty("--zoom", String(zoom));
grid.dataset.zoom = String(zoom);
void load();
