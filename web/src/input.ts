/**
 * The `input` data channel's wire format (docs/streaming.md; the gateway's side is
 * runtime/loco_lan/stream/protocol.py) and the mapping from browser key events to X keysyms.
 *
 *   channel.send(keyMessage(0xff0d, true));          // Enter down
 *   channel.send(pointerMessage(1, 0.5, 0.5));        // left button held at the centre
 *   channel.send(wheelMessage(1, 0, 0.5, 0.5));       // one notch down
 *   channel.send(releaseAllMessage());
 *   keysymOf(event)                                   // KeyboardEvent → X keysym, or null
 *
 * Positions are fractions 0..1 of the guest's screen; the wire carries them as 0..65535, so an
 * event sent while the guest changes resolution still lands in the same place.
 */
export const KEYSYM = {
  BackSpace: 0xff08, Tab: 0xff09, Return: 0xff0d, Escape: 0xff1b, Delete: 0xffff,
  Home: 0xff50, Left: 0xff51, Up: 0xff52, Right: 0xff53, Down: 0xff54,
  PageUp: 0xff55, PageDown: 0xff56, End: 0xff57, Insert: 0xff63, F1: 0xffbe,
} as const;

const enum Op { Key = 1, Pointer = 2, Wheel = 3, ReleaseAll = 4 }

const toWire = (fraction: number) => Math.round(Math.min(1, Math.max(0, fraction)) * 65535);

export function keyMessage(keysym: number, down: boolean): ArrayBuffer {
  const view = new DataView(new ArrayBuffer(6));
  view.setUint8(0, Op.Key);
  view.setUint8(1, down ? 1 : 0);
  view.setUint32(2, keysym >>> 0);
  return view.buffer;
}

/** `buttons`: 1 left, 2 middle, 4 right (X's order, not the DOM's: see `buttonsOf`). */
export function pointerMessage(buttons: number, x: number, y: number): ArrayBuffer {
  const view = new DataView(new ArrayBuffer(6));
  view.setUint8(0, Op.Pointer);
  view.setUint8(1, buttons & 7);
  view.setUint16(2, toWire(x));
  view.setUint16(4, toWire(y));
  return view.buffer;
}

/** `dy` > 0 scrolls down, `dx` > 0 right, in notches. */
export function wheelMessage(dy: number, dx: number, x: number, y: number): ArrayBuffer {
  const clamp = (v: number) => Math.max(-127, Math.min(127, Math.round(v)));
  const view = new DataView(new ArrayBuffer(7));
  view.setUint8(0, Op.Wheel);
  view.setInt8(1, clamp(dy));
  view.setInt8(2, clamp(dx));
  view.setUint16(3, toWire(x));
  view.setUint16(5, toWire(y));
  return view.buffer;
}

export function releaseAllMessage(): ArrayBuffer {
  return new Uint8Array([Op.ReleaseAll]).buffer;
}

/** DOM `MouseEvent.buttons` (1 left, 2 right, 4 middle) → the wire's (1 left, 2 middle, 4 right). */
export function buttonsOf(domButtons: number): number {
  return (domButtons & 1) | ((domButtons & 4) >> 1) | ((domButtons & 2) << 1);
}

// Keys whose keysym depends on which of the pair was pressed: by `code`.
const BY_CODE: Record<string, number> = {
  ShiftLeft: 0xffe1, ShiftRight: 0xffe2, ControlLeft: 0xffe3, ControlRight: 0xffe4,
  AltLeft: 0xffe9, AltRight: 0xffea, MetaLeft: 0xffeb, MetaRight: 0xffec, OSLeft: 0xffeb, OSRight: 0xffec,
  NumpadEnter: 0xff8d, NumpadMultiply: 0xffaa, NumpadAdd: 0xffab, NumpadSubtract: 0xffad,
  NumpadDecimal: 0xffae, NumpadDivide: 0xffaf,
};
// Numpad digits as KP_0..KP_9 while NumLock is on (event.key is then the digit).
for (let d = 0; d <= 9; d++) BY_CODE[`Numpad${d}`] = 0xffb0 + d;

const BY_KEY: Record<string, number> = {
  Backspace: KEYSYM.BackSpace, Tab: KEYSYM.Tab, Enter: KEYSYM.Return, Escape: KEYSYM.Escape,
  Delete: KEYSYM.Delete, Home: KEYSYM.Home, End: KEYSYM.End, PageUp: KEYSYM.PageUp,
  PageDown: KEYSYM.PageDown, Insert: KEYSYM.Insert, ArrowLeft: KEYSYM.Left, ArrowUp: KEYSYM.Up,
  ArrowRight: KEYSYM.Right, ArrowDown: KEYSYM.Down, Pause: 0xff13, ScrollLock: 0xff14,
  PrintScreen: 0xff61, ContextMenu: 0xff67, NumLock: 0xff7f, CapsLock: 0xffe5,
  Shift: 0xffe1, Control: 0xffe3, Alt: 0xffe9, AltGraph: 0xfe03, Meta: 0xffeb, Dead: 0,
};
for (let n = 1; n <= 24; n++) BY_KEY[`F${n}`] = KEYSYM.F1 + n - 1;

/**
 * The X keysym of a key event: modifiers and numpad keys by their physical key, named keys
 * (arrows, F1–F24, Enter …) by name, characters by their Unicode code point (Latin-1 as is,
 * the rest as 0x01000000 + code point, as X defines). Null for keys X has no keysym for.
 */
export function keysymOf(event: Pick<KeyboardEvent, "key" | "code">): number | null {
  const { key, code } = event;
  const numpadDigit = /^Numpad\d$/.test(code);
  if (code in BY_CODE && (!numpadDigit || /^\d$/.test(key))) return BY_CODE[code];
  if (key in BY_KEY) return BY_KEY[key] || null;
  const chars = [...key];
  if (chars.length !== 1) return null;
  const point = chars[0].codePointAt(0)!;
  if ((point >= 0x20 && point <= 0x7e) || (point >= 0xa0 && point <= 0xff)) return point;
  return point > 0xff ? 0x01000000 + point : null;
}
