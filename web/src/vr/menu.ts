// The focus menu: a panel inside the scene (an immersive session shows no HTML), one row per
// instance with its status, picked with a laser. In single focus a row focuses that instance; in
// multi focus it adds it, or takes it out when it is focused already. Below them the unfocused
// guests' sound level (its left half quieter, its right half louder), then the row that closes.
import * as THREE from "three";
import type { FocusMode } from "../focus";
import { FONT } from "./text";

/** What a laser picks: an entry's index, the ambient level down or up, "close", or null (the title). */
export type MenuPick = number | "quieter" | "louder" | "close" | null;

export interface MenuEntry {
  id: string;
  name: string;
  status: string;
  focused: boolean;
}

const WIDTH = 1.1; // metres
const ROW = 0.11; // metres per row
const PIXELS_PER_METRE = 900;

export class Menu {
  readonly mesh: THREE.Mesh<THREE.PlaneGeometry, THREE.MeshBasicMaterial>;
  entries: MenuEntry[] = [];
  mode: FocusMode = "single";
  ambient = 0.2; // shown on the ambient row
  hovered = -1; // row under a laser (entries, then the ambient row, then Close), -1 for none
  private readonly canvas = document.createElement("canvas");
  private readonly texture = new THREE.CanvasTexture(this.canvas);

  constructor() {
    this.texture.colorSpace = THREE.SRGBColorSpace;
    this.mesh = new THREE.Mesh(
      new THREE.PlaneGeometry(1, 1),
      new THREE.MeshBasicMaterial({ map: this.texture, transparent: true, depthTest: false }),
    );
    this.mesh.renderOrder = 10; // drawn over the screens it floats in front of
    this.mesh.visible = false;
  }

  get open(): boolean {
    return this.mesh.visible;
  }

  /** Shows the menu 1.2 m in front of the head, facing it, a little below eye level. */
  show(head: THREE.Object3D): void {
    const position = new THREE.Vector3(), quaternion = new THREE.Quaternion(), forward = new THREE.Vector3(0, 0, -1);
    head.getWorldPosition(position);
    head.getWorldQuaternion(quaternion);
    forward.applyQuaternion(quaternion).setY(0).normalize();
    const yaw = Math.atan2(-forward.x, -forward.z);
    this.mesh.position.copy(position).addScaledVector(forward, 1.2).setY(position.y - 0.15);
    this.mesh.rotation.set(-0.15, yaw, 0, "YXZ");
    this.mesh.visible = true;
    this.draw();
  }

  hide(): void {
    this.mesh.visible = false;
    this.hovered = -1;
  }

  /** The rows: a title, the entries, the ambient level, "Close". */
  private get rows(): number {
    return this.entries.length + 3;
  }

  pick(uv: THREE.Vector2): MenuPick {
    const row = Math.floor((1 - uv.y) * this.rows) - 1;
    if (row < 0) return null;
    if (row < this.entries.length) return row;
    if (row === this.entries.length) return uv.x < 0.5 ? "quieter" : "louder";
    return "close";
  }

  /** The row a pick is on, as ``hovered`` counts them. */
  rowOf(pick: MenuPick): number {
    if (pick === null) return -1;
    if (typeof pick === "number") return pick;
    return pick === "close" ? this.entries.length + 1 : this.entries.length;
  }

  /** Where each entry's row, the ambient row and last "Close" are in the world. */
  rowCentres(): number[][] {
    return Array.from({ length: this.entries.length + 2 }, (_, i) => this.at(0, i));
  }

  /** Where the ambient row's "−" and "+" are in the world. */
  ambientControls(): { quieter: number[]; louder: number[] } {
    return { quieter: this.at(-0.4, this.entries.length), louder: this.at(0.4, this.entries.length) };
  }

  private at(x: number, row: number): number[] {
    this.mesh.updateMatrixWorld();
    return this.mesh.localToWorld(new THREE.Vector3(x, 0.5 - (row + 1.5) / this.rows, 0)).toArray();
  }

  hover(row: number): void {
    if (row !== this.hovered) {
      this.hovered = row;
      if (this.open) this.draw();
    }
  }

  update(entries: MenuEntry[], mode: FocusMode, ambient: number): void {
    this.entries = entries;
    this.mode = mode;
    this.ambient = ambient;
    if (this.open) this.draw();
  }

  private draw(): void {
    const height = this.rows * ROW;
    this.mesh.scale.set(WIDTH, height, 1);
    const w = Math.round(WIDTH * PIXELS_PER_METRE), rowPx = Math.round(ROW * PIXELS_PER_METRE);
    this.canvas.width = w;
    this.canvas.height = rowPx * this.rows;
    const c = this.canvas.getContext("2d")!;
    c.fillStyle = "rgba(13, 17, 23, 0.92)";
    c.fillRect(0, 0, w, this.canvas.height);
    c.textBaseline = "middle";
    const text = (s: string, x: number, y: number, colour: string, weight = 500, align: CanvasTextAlign = "left") => {
      c.font = `${weight} ${Math.round(rowPx * 0.45)}px ${FONT}`;
      c.fillStyle = colour;
      c.textAlign = align;
      c.fillText(s, x, y, w - 60);
    };
    text(this.mode === "single" ? "Focus one guest" : "Focus guests (pick to add or remove)", 30, rowPx / 2, "#8b949e", 600);
    this.entries.forEach((entry, i) => {
      const y = (i + 1) * rowPx;
      if (i === this.hovered) {
        c.fillStyle = "#1f6feb";
        c.fillRect(0, y, w, rowPx);
      }
      c.fillStyle = entry.focused ? "#ffa31a" : "#30363d";
      c.fillRect(24, y + rowPx * 0.3, rowPx * 0.4, rowPx * 0.4);
      text(entry.name, 30 + rowPx * 0.6, y + rowPx / 2, "#f0f6fc", entry.focused ? 700 : 500);
      text(entry.status, w - 30, y + rowPx / 2, "#8b949e", 500, "right");
    });
    const highlight = (row: number) => {
      if (this.hovered !== row) return;
      c.fillStyle = "#1f6feb";
      c.fillRect(0, (row + 1) * rowPx, w, rowPx);
    };
    const ambientRow = this.entries.length, ambientY = (ambientRow + 1) * rowPx + rowPx / 2;
    highlight(ambientRow);
    text("−", w * 0.1, ambientY, "#f0f6fc", 700, "center");
    text(`Other guests' sound ${Math.round(this.ambient * 100)}%`, w / 2, ambientY, "#f0f6fc", 500, "center");
    text("+", w * 0.9, ambientY, "#f0f6fc", 700, "center");
    highlight(ambientRow + 1);
    text("Close", w / 2, (ambientRow + 2) * rowPx + rowPx / 2, "#f0f6fc", 600, "center");
    this.texture.needsUpdate = true;
  }
}
