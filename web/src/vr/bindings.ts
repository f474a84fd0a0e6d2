// The controllers' bindings: the `vr` section of /api/config/hotkeys (its format and defaults are
// in runtime/loco_lan/schemas/hotkeys.schema.json; the gateway fills in the defaults), turned into
// what the scene does. Pure: no three.js, no WebXR.
import { keysymOf } from "../input";

export type Button =
  | "a" | "b" | "x" | "y" | "trigger" | "grip" | "thumbstick"
  | "thumbstick-left" | "thumbstick-right" | "thumbstick-up" | "thumbstick-down";
export type SceneAction = "click" | "menu" | "next-instance" | "previous-instance" | "zoom" | "none";
export type Binding = { action: SceneAction } | { key: string; keysym: number };

const ACTIONS: readonly string[] = ["click", "menu", "next-instance", "previous-instance", "zoom", "none"];

/** Every bound button's binding; a value that is neither an action nor a key is reported, not guessed. */
export function parseBindings(vr: Record<string, string>): { bindings: Map<Button, Binding>; problems: string[] } {
  const bindings = new Map<Button, Binding>();
  const problems: string[] = [];
  for (const [button, value] of Object.entries(vr)) {
    if (ACTIONS.includes(value)) {
      bindings.set(button as Button, { action: value as SceneAction });
      continue;
    }
    const sym = keysymOf({ key: value, code: "" }); // keys are named as KeyboardEvent.key names them
    if (sym === null) problems.push(`${button}: ${JSON.stringify(value)} is neither a key nor an action`);
    else bindings.set(button as Button, { key: value, keysym: sym });
  }
  return { bindings, problems };
}

// xr-standard gamepad layout (WebXR Gamepads Module): button indices of each hand's controller.
export const GAMEPAD_BUTTONS: Record<"left" | "right", Partial<Record<Button, number>>> = {
  left: { trigger: 0, grip: 1, thumbstick: 3, x: 4, y: 5 },
  right: { trigger: 0, grip: 1, thumbstick: 3, a: 4, b: 5 },
};
const STICK_ON = 0.7; // a thumbstick push counts past this ...
const STICK_OFF = 0.3; // ... and must come back inside this before it counts again

/** One hand's controller state between two frames: which buttons went down or up since the last. */
export class ButtonEdges {
  private held = new Set<Button>();

  /** ``pressed``: the gamepad's buttons' pressed flags; ``stick``: its thumbstick's x, y. */
  update(hand: "left" | "right", pressed: readonly boolean[], stick: [number, number]): { down: Button[]; up: Button[] } {
    const now = new Set<Button>();
    for (const [button, index] of Object.entries(GAMEPAD_BUTTONS[hand]) as [Button, number][]) {
      if (pressed[index]) now.add(button);
    }
    const [x, y] = stick;
    const directions: [Button, number][] = [
      ["thumbstick-left", -x], ["thumbstick-right", x], ["thumbstick-up", -y], ["thumbstick-down", y],
    ];
    for (const [direction, push] of directions) {
      if (push > STICK_ON || (this.held.has(direction) && push > STICK_OFF)) now.add(direction);
    }
    const down = [...now].filter((b) => !this.held.has(b));
    const up = [...this.held].filter((b) => !now.has(b));
    this.held = now;
    return { down, up };
  }
}
