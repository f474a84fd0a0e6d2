import { describe, expect, it } from "vitest";
import { ButtonEdges, parseBindings } from "../src/vr/bindings";
import { EYE_HEIGHT, FOCUSED_SCALE, layout, RADIUS, SCREEN_WIDTH, ZOOMED_RADIUS } from "../src/vr/layout";

const ids = (n: number) => Array.from({ length: n }, (_, i) => `instance-${i}`);
const distance = (p: { x: number; y: number; z: number }) => Math.hypot(p.x, p.y - EYE_HEIGHT, p.z);

describe("layout", () => {
  it("puts one to four screens in one arc at eye height, facing the player", () => {
    for (const n of [1, 2, 3, 4]) {
      const placements = layout(ids(n), new Set());
      for (const p of placements) {
        expect(p.y).toBe(EYE_HEIGHT);
        expect(distance(p)).toBeCloseTo(RADIUS);
        expect(Math.atan2(-p.x, -p.z)).toBeCloseTo(p.yaw); // faces the head
      }
      expect(placements[0].yaw).toBeCloseTo(-placements[n - 1].yaw); // centred ahead
    }
    const [alone] = layout(ids(1), new Set());
    expect([alone.x, alone.z, alone.yaw, alone.pitch, alone.scale].map((v) => v + 0)).toEqual([0, -RADIUS, 0, 0, 1]);
  });

  it("puts five to nine in two arcs, the upper looking down at the head", () => {
    const placements = layout(ids(9), new Set());
    expect(placements.slice(0, 5).every((p) => p.y > EYE_HEIGHT && p.pitch > 0)).toBe(true);
    expect(placements.slice(5).every((p) => p.y < EYE_HEIGHT && p.pitch < 0)).toBe(true);
    for (const p of placements) expect(distance(p)).toBeCloseTo(RADIUS);
  });

  it("leaves room for focused neighbours to grow without overlapping", () => {
    const [a, b] = layout(ids(3), new Set(ids(3)));
    const gap = Math.hypot(a.x - b.x, a.z - b.z);
    expect(gap).toBeGreaterThan(SCREEN_WIDTH * FOCUSED_SCALE);
  });

  it("grows focused screens in place and brings them close when zoomed", () => {
    const still = layout(ids(3), new Set(["instance-1"]));
    expect(still.map((p) => p.scale)).toEqual([1, FOCUSED_SCALE, 1]);
    expect(still[1]).toMatchObject({ ...layout(ids(3), new Set())[1], scale: FOCUSED_SCALE });
    const zoomed = layout(ids(3), new Set(["instance-1"]), true);
    expect(distance(zoomed[1])).toBeCloseTo(ZOOMED_RADIUS);
    expect(zoomed[0]).toEqual(still[0]);
  });
});

describe("controller bindings", () => {
  it("reads keys and actions, and names what is neither", () => {
    const { bindings, problems } = parseBindings({ a: "F1", b: "Escape", trigger: "click", y: "menu", x: "F13x" });
    expect(bindings.get("a")).toEqual({ key: "F1", keysym: 0xffbe });
    expect(bindings.get("b")).toEqual({ key: "Escape", keysym: 0xff1b });
    expect(bindings.get("trigger")).toEqual({ action: "click" });
    expect(problems).toEqual(['x: "F13x" is neither a key nor an action']);
  });

  it("reports each button once when it goes down and once when it comes up", () => {
    const edges = new ButtonEdges();
    const pressed = (...indices: number[]) => Array.from({ length: 7 }, (_, i) => indices.includes(i));
    expect(edges.update("right", pressed(4), [0, 0])).toEqual({ down: ["a"], up: [] });
    expect(edges.update("right", pressed(4), [0, 0])).toEqual({ down: [], up: [] }); // held: nothing new
    expect(edges.update("right", pressed(0), [0, 0])).toEqual({ down: ["trigger"], up: ["a"] });
    expect(edges.update("left", pressed(4, 5), [0, 0]).down).toEqual(["x", "y"]);
  });

  it("counts a thumbstick push once, until it comes back", () => {
    const edges = new ButtonEdges();
    const none = Array(7).fill(false);
    expect(edges.update("right", none, [0.8, 0]).down).toEqual(["thumbstick-right"]);
    expect(edges.update("right", none, [0.5, 0]).down).toEqual([]); // still out past the release point
    expect(edges.update("right", none, [0.2, 0]).up).toEqual(["thumbstick-right"]);
    expect(edges.update("right", none, [-0.9, 0]).down).toEqual(["thumbstick-left"]);
    expect(edges.update("right", none, [0, 0.75]).down).toEqual(["thumbstick-down"]);
  });
});
