// bench_stream.py's measurements in the page, for a harness stream (WebRTC) and for noVNC: a
// key flips the demo guest's latency square; the time until the page shows it flipped is the
// input-to-photon latency. WebRTC frames are looked at as they are presented
// (requestVideoFrameCallback); noVNC draws into a canvas, looked at every animation frame.
"use strict";

function pixelReader(source, x, y) {
  const canvas = new OffscreenCanvas(1, 1);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  return () => {
    context.drawImage(source, x, y, 1, 1, 0, 0, 1, 1);
    return context.getImageData(0, 0, 1, 1).data[0] > 128;
  };
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function pressesUntilSeen(presses, press, nextLook, bright) {
  const latencies = [];
  for (let i = 0; i < presses; i++) {
    const before = bright();
    const sent = performance.now();
    press();
    await new Promise((resolve) => {
      const look = () => {
        if (bright() !== before) {
          latencies.push(performance.now() - sent);
          resolve();
        } else if (performance.now() - sent > 5000) {
          latencies.push(null);  // lost: counted, not waited for forever
          resolve();
        } else nextLook(look);
      };
      nextLook(look);
    });
    await pause(40 + Math.random() * 60);  // presses do not line up with the guest's frames
  }
  return latencies;
}

window.probe = {
  async webrtcLatency(key, x, y, keysym, presses) {
    const { video } = harness.stream(key);
    const bright = pixelReader(video, x, y);
    return pressesUntilSeen(presses, () => { harness.key(key, keysym, true); harness.key(key, keysym, false); },
      (look) => video.requestVideoFrameCallback(look), bright);
  },

  async novncLatency(x, y, keysym, presses) {
    const canvas = document.querySelector("#screen canvas");
    const bright = pixelReader(canvas, x, y);
    return pressesUntilSeen(presses, () => window.rfb.sendKey(keysym, "KeyA"),
      (look) => requestAnimationFrame(look), bright);
  },
};
