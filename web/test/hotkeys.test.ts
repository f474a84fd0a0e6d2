import { describe, expect, it } from "vitest";
import { matchHotkey, parseChord, parseHotkeys } from "../src/hotkeys";

const config = {
  focus: { "Ctrl+1": "instance-0", "Ctrl+2": "instance-1", "Ctrl+9": "instance-8" },
  zoom: { "Ctrl=": "zoom-in", "Ctrl-": "zoom-out" },
  switch: { Tab: "next-instance", "Shift+Tab": "previous-instance" },
  vr: { a: "F1" },
};
const bindings = parseHotkeys(config);
const press = (key: string, code: string, mods: Partial<Record<"ctrlKey" | "altKey" | "shiftKey" | "metaKey", boolean>> = {}) =>
  matchHotkey(bindings, { key, code, ctrlKey: false, altKey: false, shiftKey: false, metaKey: false, ...mods });

describe("chords", () => {
  it("reads modifiers with and without a plus", () => {
    expect(parseChord("Ctrl=")).toMatchObject({ ctrl: true, key: "=" });
    expect(parseChord("Ctrl-")).toMatchObject({ ctrl: true, key: "-" });
    expect(parseChord("Ctrl+-")).toMatchObject({ ctrl: true, key: "-" });
    expect(parseChord("Ctrl++")).toMatchObject({ ctrl: true, key: "+" });
    expect(parseChord("Shift+Tab")).toMatchObject({ shift: true, ctrl: false, key: "Tab" });
    expect(parseChord("Alt+Shift+F4")).toMatchObject({ alt: true, shift: true, key: "F4" });
    expect(parseChord("Ctrl+")).toMatchObject({ ctrl: true, key: "+" });
    expect(parseChord("")).toBeNull();
  });

  it("ignores what is not a key binding of the page", () => {
    expect(bindings.map((b) => b.chord)).toEqual(["Ctrl+1", "Ctrl+2", "Ctrl+9", "Ctrl=", "Ctrl-", "Tab", "Shift+Tab"]);
    expect(parseHotkeys({ zoom: { "Ctrl=": "zoom-sideways" } })).toEqual([]);
    expect(parseHotkeys(null)).toEqual([]);
  });
});

describe("matching key presses", () => {
  it("focuses with Ctrl and a digit, top row or numpad", () => {
    expect(press("1", "Digit1", { ctrlKey: true })).toEqual({ kind: "focus", id: "instance-0" });
    expect(press("9", "Numpad9", { ctrlKey: true })).toEqual({ kind: "focus", id: "instance-8" });
    expect(press("1", "Digit1")).toBeNull();
    expect(press("1", "Digit1", { ctrlKey: true, altKey: true })).toBeNull();
  });

  it("zooms with Ctrl= and Ctrl- (the chords today's client never matched)", () => {
    expect(press("=", "Equal", { ctrlKey: true })).toEqual({ kind: "zoom", step: 1 });
    expect(press("-", "Minus", { ctrlKey: true })).toEqual({ kind: "zoom", step: -1 });
    expect(press("-", "NumpadSubtract", { ctrlKey: true })).toEqual({ kind: "zoom", step: -1 });
    // A layout where "=" needs Shift (Shift+0 on German keyboards) still zooms in.
    expect(press("=", "Digit0", { ctrlKey: true, shiftKey: true })).toEqual({ kind: "zoom", step: 1 });
  });

  it("cycles with Tab, backwards with Shift+Tab", () => {
    expect(press("Tab", "Tab")).toEqual({ kind: "switch", step: 1 });
    expect(press("Tab", "Tab", { shiftKey: true })).toEqual({ kind: "switch", step: -1 });
    expect(press("Tab", "Tab", { ctrlKey: true })).toBeNull();
    expect(press("a", "KeyA")).toBeNull();
  });
});
