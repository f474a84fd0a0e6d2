// Where each guest's screen stands around the player: pure arithmetic, no three.js.
//
// Screens keep their place whatever the focus (a screen that jumped around would move its sound
// too); a focused screen grows in place, so each slot is wide enough for a focused screen. Up to
// four screens stand in one arc at eye height, five to nine in two arcs one above the other. Every
// screen faces the player's head.

export const EYE_HEIGHT = 1.6; // metres, where the arcs are centred (the listener's height standing)
export const RADIUS = 3; // metres from the player to each screen
export const SCREEN_WIDTH = 1.2; // metres, an unfocused 4:3 screen
export const FOCUSED_SCALE = 1.4;
export const ZOOMED_SCALE = 2;
export const ZOOMED_RADIUS = 2; // a zoomed screen comes this close
const GAP = 0.12; // metres between two focused neighbours
const ROW_PITCH = 1.4; // metres between the two arcs' centres
const ONE_ROW_MAX = 4;

export interface Placement {
  x: number;
  y: number;
  z: number;
  yaw: number; // radians about +y; 0 faces +z (the player stands at the origin looking down -z)
  pitch: number; // radians about the screen's x axis (after yaw): the upper arc looks down at the head
  scale: number; // 1 for an unfocused screen
}

/** The slot of screen ``index`` of ``count`` (0 is the leftmost of the top arc), at its base size. */
export function slot(index: number, count: number): Omit<Placement, "scale"> {
  const rows = count <= ONE_ROW_MAX ? 1 : 2;
  const top = Math.ceil(count / rows);
  const row = index < top ? 0 : 1;
  const inRow = row === 0 ? top : count - top;
  const column = row === 0 ? index : index - top;
  const step = (SCREEN_WIDTH * FOCUSED_SCALE + GAP) / RADIUS; // radians per slot
  const yaw = (((inRow - 1) / 2) - column) * step; // positive yaw turns left
  const height = rows === 1 ? 0 : (row === 0 ? 0.5 : -0.5) * ROW_PITCH;
  const along = Math.sqrt(RADIUS * RADIUS - height * height);
  return {
    x: -Math.sin(yaw) * along,
    y: EYE_HEIGHT + height,
    z: -Math.cos(yaw) * along,
    yaw,
    pitch: Math.asin(height / RADIUS),
  };
}

/** Every screen's placement for this focus; ``zoomed`` brings the focused ones close and large. */
export function layout(ids: readonly string[], focused: ReadonlySet<string>, zoomed = false): Placement[] {
  return ids.map((id, index) => {
    const base = slot(index, ids.length);
    if (!focused.has(id)) return { ...base, scale: 1 };
    if (!zoomed) return { ...base, scale: FOCUSED_SCALE };
    const k = ZOOMED_RADIUS / RADIUS; // slide along the line to the head
    return {
      ...base,
      x: base.x * k,
      y: EYE_HEIGHT + (base.y - EYE_HEIGHT) * k,
      z: base.z * k,
      scale: ZOOMED_SCALE,
    };
  });
}
