/**
 * The page's key bindings from `config/hotkeys.json` (`/api/config/hotkeys`):
 *
 *   const bindings = parseHotkeys(await (await fetch("/api/config/hotkeys")).json());
 *   const action = matchHotkey(bindings, keydownEvent);  // {kind: "focus", id} | {kind: "zoom", step}
 *                                                       // | {kind: "switch", step} | null
 *
 * A chord is modifiers then one key: "Ctrl+1", "Ctrl=", "Ctrl-", "Shift+Tab", "Tab" (the "+"
 * after a modifier is optional, so "Ctrl=" and "Ctrl+=" are the same chord; "Ctrl++" and
 * "Ctrl+" are Ctrl with "+"). Ctrl, Alt and Meta must match exactly; Shift must match for named keys and
 * letters, and is not asked of digits and symbols, which some keyboard layouts only reach with
 * Shift. Digits and symbols also match by physical key (the top row and the numpad), whatever
 * the layout makes of them.
 */
export type HotkeyAction =
  | { kind: "focus"; id: string }
  | { kind: "zoom"; step: 1 | -1 }
  | { kind: "switch"; step: 1 | -1 };

export interface Binding {
  chord: string;
  ctrl: boolean;
  alt: boolean;
  shift: boolean;
  meta: boolean;
  key: string;
  action: HotkeyAction;
}

const MODIFIER = /^(ctrl|control|alt|option|shift|meta|cmd|command|super)(\+|(?=.))/i;
const CODES: Record<string, string[]> = {
  "=": ["Equal"], "+": ["Equal", "NumpadAdd"], "-": ["Minus", "NumpadSubtract"], "*": ["NumpadMultiply"],
  "/": ["Slash", "NumpadDivide"], ".": ["Period", "NumpadDecimal"], ",": ["Comma"],
};
for (let d = 0; d <= 9; d++) CODES[`${d}`] = [`Digit${d}`, `Numpad${d}`];
const KEY_NAMES: Record<string, string> = { esc: "Escape", return: "Enter", space: " ", left: "ArrowLeft",
  right: "ArrowRight", up: "ArrowUp", down: "ArrowDown", del: "Delete" };

/** One chord's modifiers and key; null when it names no key. */
export function parseChord(chord: string): Omit<Binding, "chord" | "action"> | null {
  const parsed = { ctrl: false, alt: false, shift: false, meta: false, key: "" };
  let rest = chord.trim();
  for (let match = MODIFIER.exec(rest); match && rest.length > match[1].length; match = MODIFIER.exec(rest)) {
    const name = match[1].toLowerCase();
    if (name === "ctrl" || name === "control") parsed.ctrl = true;
    else if (name === "alt" || name === "option") parsed.alt = true;
    else if (name === "shift") parsed.shift = true;
    else parsed.meta = true;
    rest = rest.slice(match[0].length) || "+"; // "Ctrl+" is Ctrl with "+"
  }
  if (!rest) return null;
  parsed.key = rest.length === 1 ? rest : KEY_NAMES[rest.toLowerCase()] ?? rest;
  return parsed;
}

const ZOOM: Record<string, 1 | -1> = { "zoom-in": 1, "zoom-out": -1 };
const SWITCH: Record<string, 1 | -1> = { "next-instance": 1, "previous-instance": -1 };

/** The bindings of a hotkeys.json document (its `vr` section is the VR scene's business). */
export function parseHotkeys(config: any): Binding[] {
  const bindings: Binding[] = [];
  const add = (section: any, action: (value: string) => HotkeyAction | null) => {
    for (const [chord, value] of Object.entries(section ?? {})) {
      const parsed = parseChord(chord);
      const bound = typeof value === "string" ? action(value) : null;
      if (parsed && bound) bindings.push({ chord, ...parsed, action: bound });
    }
  };
  add(config?.focus, (id) => ({ kind: "focus", id }));
  add(config?.zoom, (v) => (v in ZOOM ? { kind: "zoom", step: ZOOM[v] } : null));
  add(config?.switch, (v) => (v in SWITCH ? { kind: "switch", step: SWITCH[v] } : null));
  return bindings;
}

type KeyEventLike = Pick<KeyboardEvent, "key" | "code" | "ctrlKey" | "altKey" | "shiftKey" | "metaKey">;

function matches(binding: Binding, event: KeyEventLike): boolean {
  if (binding.ctrl !== event.ctrlKey || binding.alt !== event.altKey || binding.meta !== event.metaKey) return false;
  const key = binding.key;
  const symbol = key.length === 1 && !/[a-z]/i.test(key);
  if (!symbol && binding.shift !== event.shiftKey) return false;
  if (symbol) return event.key === key || (CODES[key] ?? []).includes(event.code);
  return event.key.toLowerCase() === key.toLowerCase();
}

/** The action a key press is bound to, or null. The most specific binding wins (Shift+Tab over Tab). */
export function matchHotkey(bindings: Binding[], event: KeyEventLike): HotkeyAction | null {
  let best: Binding | null = null;
  for (const binding of bindings) {
    if (matches(binding, event) && (!best || Number(binding.shift) > Number(best.shift))) best = binding;
  }
  return best?.action ?? null;
}
