import { describe, expect, it } from "vitest";
import { buttonsOf, keyMessage, keysymOf, pointerMessage, releaseAllMessage, wheelMessage } from "../src/input";
import { backoffDelay } from "../src/retry";

const bytes = (buffer: ArrayBuffer) => [...new Uint8Array(buffer)];

describe("wire format (docs/streaming.md)", () => {
  it("encodes big-endian events", () => {
    expect(bytes(keyMessage(0xff0d, true))).toEqual([1, 1, 0, 0, 0xff, 0x0d]);
    expect(bytes(keyMessage(0x61, false))).toEqual([1, 0, 0, 0, 0, 0x61]);
    expect(bytes(pointerMessage(1, 0.25, 0.5))).toEqual([2, 1, 0x40, 0x00, 0x80, 0x00]);
    expect(bytes(pointerMessage(4, 1.5, -1))).toEqual([2, 4, 0xff, 0xff, 0, 0]); // clamped to the screen
    expect(bytes(wheelMessage(-1, 2, 0, 1))).toEqual([3, 0xff, 2, 0, 0, 0xff, 0xff]);
    expect(bytes(releaseAllMessage())).toEqual([4]);
  });

  it("maps DOM buttons to X's order", () => {
    expect(buttonsOf(1)).toBe(1); // left
    expect(buttonsOf(2)).toBe(4); // right
    expect(buttonsOf(4)).toBe(2); // middle
    expect(buttonsOf(7)).toBe(7);
  });
});

describe("keysyms", () => {
  it("maps characters, named keys and modifiers", () => {
    expect(keysymOf({ key: "a", code: "KeyA" })).toBe(0x61);
    expect(keysymOf({ key: "A", code: "KeyA" })).toBe(0x41);
    expect(keysymOf({ key: "é", code: "Digit2" })).toBe(0xe9);
    expect(keysymOf({ key: "€", code: "KeyE" })).toBe(0x010020ac);
    expect(keysymOf({ key: "Enter", code: "Enter" })).toBe(0xff0d);
    expect(keysymOf({ key: "ArrowLeft", code: "ArrowLeft" })).toBe(0xff51);
    expect(keysymOf({ key: "F1", code: "F1" })).toBe(0xffbe);
    expect(keysymOf({ key: "F12", code: "F12" })).toBe(0xffc9);
    expect(keysymOf({ key: "Shift", code: "ShiftRight" })).toBe(0xffe2);
    expect(keysymOf({ key: "Control", code: "ControlLeft" })).toBe(0xffe3);
    expect(keysymOf({ key: "Alt", code: "AltLeft" })).toBe(0xffe9);
    expect(keysymOf({ key: " ", code: "Space" })).toBe(0x20);
    expect(keysymOf({ key: "5", code: "Numpad5" })).toBe(0xffb5);
    expect(keysymOf({ key: "ArrowUp", code: "Numpad8" })).toBe(0xff52); // NumLock off
    expect(keysymOf({ key: "Unidentified", code: "" })).toBeNull();
    expect(keysymOf({ key: "Dead", code: "Quote" })).toBeNull();
  });
});

describe("backoff", () => {
  it("doubles to its cap and jitters downwards only", () => {
    const pacing = { baseMs: 250, maxMs: 1000 };
    expect([1, 2, 3, 4, 9].map((n) => backoffDelay(n, pacing, () => 0))).toEqual([250, 500, 1000, 1000, 1000]);
    expect(backoffDelay(3, pacing, () => 1)).toBe(750);
    expect(backoffDelay(0, pacing, () => 0)).toBe(250);
  });
});
