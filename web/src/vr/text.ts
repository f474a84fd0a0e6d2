// Text inside the scene, drawn on a canvas: an immersive session shows no HTML, so labels and the
// focus menu are textures (no font files to fetch: the system's sans-serif).
import * as THREE from "three";

export const FONT = "system-ui, sans-serif";

/** One line of text, 1024x128 pixels, for a plane 8:1. */
export function labelTexture(text: string, colour: string): THREE.CanvasTexture {
  const canvas = document.createElement("canvas");
  canvas.width = 1024;
  canvas.height = 128;
  const context = canvas.getContext("2d")!;
  context.font = `600 64px ${FONT}`;
  context.fillStyle = colour;
  context.textAlign = "center";
  context.textBaseline = "middle";
  context.fillText(text, 512, 64, 1000);
  const texture = new THREE.CanvasTexture(canvas);
  texture.colorSpace = THREE.SRGBColorSpace;
  return texture;
}
