// The VR scene's page (/vr): the same gateway, streams, focus and token as the web client.
import { storedAmbient } from "../audio";
import { GuestConnection } from "../connection";
import { FocusClient } from "../focus";
import { playerToken } from "../token";
import { parseBindings } from "./bindings";
import { VRScene } from "./scene";

const token = playerToken();
const [instances, hotkeys] = await Promise.all([
  fetch("/api/instances").then((r) => r.json()) as Promise<{ instances: { id: string; name?: string }[] }>,
  fetch("/api/config/hotkeys").then((r) => r.json()) as Promise<{ vr?: Record<string, string> }>,
]);
const { bindings, problems } = parseBindings(hotkeys.vr ?? {});
if (problems.length) console.warn("hotkeys.json vr section:", problems.join("; "));

const focus = new FocusClient({ token });
const guests = instances.instances.map((instance) => {
  const connection = new GuestConnection(instance.id, { token });
  document.getElementById("streams")!.append(connection.video);
  return { id: instance.id, name: instance.name ?? instance.id, connection };
});
const scene = new VRScene(document.getElementById("scene")!, guests, focus, bindings, storedAmbient());
focus.start();
for (const guest of guests) guest.connection.start();

const enter = document.getElementById("enter-vr")!;
void navigator.xr?.isSessionSupported("immersive-vr").then((supported) => { enter.hidden = !supported; });
enter.addEventListener("click", () => void scene.enterVR());
document.getElementById("menu")!.addEventListener("click", () => scene.toggleMenu());

// For diagnostics and the browser tests (tests/integration/vr): what is shown and heard, and the
// canvas as drawn. They read the scene; the tests act through an emulated headset, not through here.
Object.assign(window, {
  locoVR: {
    state: () => scene.snapshot(),
    levels: (ms: number) => scene.audio.levels(ms),
    capture: async () => (await scene.nextFrame()).toDataURL("image/png"),
  },
});
