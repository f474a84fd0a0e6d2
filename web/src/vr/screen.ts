// One guest's screen in the scene: its live picture on a plane, a frame that lights up while the
// guest is focused, and a label with its name and stream status underneath.
import * as THREE from "three";
import { SCREEN_WIDTH, type Placement } from "./layout";
import { labelTexture } from "./text";

const FOCUSED_FRAME = 0xffa31a;
const UNFOCUSED_FRAME = 0x30363d;
const BORDER = 0.05; // metres of frame around the picture

export class Screen {
  readonly group = new THREE.Group();
  /** The picture: what lasers hit (its uv is the spot on the guest's screen). */
  readonly picture: THREE.Mesh<THREE.PlaneGeometry, THREE.MeshBasicMaterial>;
  /** Decoded frames presented, each one uploaded to the texture (for the scene's probe). */
  frames = 0;
  focused = false;
  private readonly texture: THREE.Texture;
  private readonly frame: THREE.Mesh<THREE.PlaneGeometry, THREE.MeshBasicMaterial>;
  private readonly label: THREE.Mesh<THREE.PlaneGeometry, THREE.MeshBasicMaterial>;
  private aspect = 4 / 3;

  constructor(readonly id: string, readonly name: string, readonly video: HTMLVideoElement) {
    // three's VideoTexture uploads each decoded frame as it is presented (requestVideoFrameCallback),
    // and only then: no timer, no frame twice; it also takes a new size when the guest changes mode.
    this.texture = new THREE.VideoTexture(video);
    this.texture.colorSpace = THREE.SRGBColorSpace;
    const material = new THREE.MeshBasicMaterial({ color: 0x101418 });
    this.picture = new THREE.Mesh(new THREE.PlaneGeometry(1, 1), material);
    this.picture.userData.screen = this;
    this.frame = new THREE.Mesh(new THREE.PlaneGeometry(1, 1), new THREE.MeshBasicMaterial({ color: UNFOCUSED_FRAME }));
    this.frame.position.z = -0.01;
    this.label = new THREE.Mesh(new THREE.PlaneGeometry(1, 0.125), new THREE.MeshBasicMaterial({ transparent: true }));
    this.group.add(this.frame, this.picture, this.label);
    this.resize();
    this.setStatus("connecting");
    const onFrame = () => {
      if (!this.picture.material.map) this.showPicture();
      this.frames++;
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  private showPicture(): void {
    const material = this.picture.material;
    material.map = this.texture;
    material.color.set(0xffffff);
    material.needsUpdate = true;
  }

  /** The picture's size follows the guest's aspect ratio (1024x768, 800x600, 640x480 alike are 4:3). */
  private resize(): void {
    const width = SCREEN_WIDTH, height = SCREEN_WIDTH / this.aspect;
    this.picture.scale.set(width, height, 1);
    this.frame.scale.set(width + 2 * BORDER, height + 2 * BORDER, 1);
    this.label.scale.set(width, width, 1);
    this.label.position.y = -height / 2 - BORDER - 0.1;
  }

  place(placement: Placement): void {
    this.group.position.set(placement.x, placement.y, placement.z);
    this.group.rotation.set(placement.pitch, placement.yaw, 0, "YXZ");
    this.group.scale.setScalar(placement.scale);
  }

  setFocused(focused: boolean): void {
    this.focused = focused;
    this.frame.material.color.set(focused ? FOCUSED_FRAME : UNFOCUSED_FRAME);
  }

  setStatus(status: string): void {
    this.label.material.map?.dispose();
    this.label.material.map = labelTexture(`${this.name}  ·  ${status}`, this.focused ? "#ffa31a" : "#c9d1d9");
    this.label.material.needsUpdate = true;
    const { videoWidth, videoHeight } = this.video;
    if (videoWidth && videoHeight && Math.abs(videoWidth / videoHeight - this.aspect) > 0.01) {
      this.aspect = videoWidth / videoHeight;
      this.resize();
    }
  }

  /** Where on the guest's screen a hit at ``uv`` of the picture is: fractions 0..1 from its top left. */
  static spot(uv: THREE.Vector2): [number, number] {
    return [uv.x, 1 - uv.y];
  }
}
