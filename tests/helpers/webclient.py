"""The web client (web/) as tests look at it in Chromium: what each tile shows and says, its
decoded picture, and a frame counter on each tile's video (requestVideoFrameCallback) that
records the longest wait between two decoded frames. Shared by the web and VR tests."""

import numpy as np
from streamstack import TOKEN, png_array, wait_until

from loco_lan import demoguest

TILES = """() => [...document.querySelectorAll('.tile')].map((t) => {
  const v = t.querySelector('video');
  return { id: t.dataset.id, phase: t.dataset.phase, focused: t.dataset.focused === 'true',
           target: t.classList.contains('target'), keyboard: document.activeElement === t,
           message: t.querySelector('.message').textContent, status: t.querySelector('.status').textContent,
           note: t.querySelector('.note').hidden ? '' : t.querySelector('.note').textContent,
           width: v.videoWidth, height: v.videoHeight, level: Number(t.querySelector('.level').value),
           sinkId: v.sinkId, output: t.querySelector('.output').value, muted: v.muted, volume: v.volume };
})"""

COUNT_FRAMES = """() => {
  window.__frames = window.__frames || {};
  for (const t of document.querySelectorAll('.tile')) {
    const id = t.dataset.id, video = t.querySelector('video');
    if (window.__frames[id]) continue;
    const c = window.__frames[id] = { count: 0, last: 0, maxGap: 0, since: performance.now() };
    const tick = (now) => {
      if (c.count) c.maxGap = Math.max(c.maxGap, now - c.last);
      c.count++; c.last = now;
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }
}"""


def open_client(context, stack, token: bool = True, path: str = "/"):
    """A page of the web client; with the player token in the link's fragment, as bootstrap prints it."""
    page = context.new_page()
    page.goto(stack.gateway.url + path + (f"#token={TOKEN}" if token else ""))
    return page


def tiles(page) -> dict[str, dict]:
    return {t["id"]: t for t in page.evaluate(TILES)}


def wait_all(page, predicate, what: str, timeout: float = 60) -> dict[str, dict]:
    return wait_until(lambda: (ts := tiles(page)) and all(predicate(t) for t in ts.values()) and ts, timeout, what)


def picture(page, instance: str) -> np.ndarray:
    """The tile's decoded picture now, at the video's own size."""
    return png_array(page.evaluate("""(id) => {
      const v = document.querySelector(`.tile[data-id="${id}"] video`);
      const c = Object.assign(document.createElement('canvas'), { width: v.videoWidth, height: v.videoHeight });
      c.getContext('2d').drawImage(v, 0, 0);
      return c.toDataURL('image/png');
    }""", instance))


def panel(page, instance: str):
    """The demo window as the tile shows it (None while the picture is not at 1024x768)."""
    frame = picture(page, instance)
    return demoguest.read_panel(frame) if frame.shape[:2] == (768, 1024) else None


def count_frames(page) -> None:
    page.evaluate(COUNT_FRAMES)


def frames(page) -> dict[str, dict]:
    return page.evaluate("() => window.__frames")


def reset_gaps(page) -> None:
    page.evaluate("() => Object.values(window.__frames).forEach((c) => { c.maxGap = 0; })")


RECORD_PHASES = """() => {
  window.__phases = {};
  for (const t of document.querySelectorAll('.tile')) {
    const message = t.querySelector('.message');
    const log = window.__phases[t.dataset.id] = [[Date.now(), t.dataset.phase, message.textContent]];
    new MutationObserver(() => {
      const text = message.textContent;
      const last = log[log.length - 1];
      if (last[1] !== t.dataset.phase || (last[2] !== text && !/next try in/.test(text + last[2]))) {
        log.push([Date.now(), t.dataset.phase, text]);
      }
    }).observe(t, { attributes: true, subtree: true, childList: true, characterData: true });
  }
}"""


def record_phases(page) -> None:
    """From now on, every tile's phase and message as they change, with Date.now() (see phases)."""
    page.evaluate(RECORD_PHASES)


def phases(page) -> dict[str, list[tuple[float, str, str]]]:
    """Per tile: (seconds since the epoch, phase, message) for each change since record_phases."""
    return {k: [(t / 1000, p, m) for t, p, m in v] for k, v in page.evaluate("() => window.__phases").items()}
