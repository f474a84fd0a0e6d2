"""The gateway's H.264 option: Constrained Baseline (42e01f), decoded by Chromium."""

import pytest
from streamstack import StreamStack
from test_gateway import connect, picture, wait_frames

from loco_lan import demoguest

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_disk, harness):
    stack = StreamStack(tmp_path_factory.mktemp("h264"), demo_disk, count=1, web_root=harness,
                        gateway_args=("--codec", "h264"))
    try:
        yield stack.start()
    finally:
        stack.stop()


def test_h264_streams_decode_in_chromium(page, stack):
    connect(page, "h264", "instance-0")
    wait_frames(page, "h264", 10)
    codec = page.evaluate("""(async () => { const stats = await harness.stream('h264').pc.getStats(); let mime;
        stats.forEach(r => { if (r.type === 'codec' && r.mimeType.startsWith('video/')) mime = r.mimeType + ' '
        + (r.sdpFmtpLine || ''); }); return mime; })()""")
    assert codec.startswith("video/H264") and "profile-level-id=42e01f" in codec
    assert demoguest.read_panel(picture(page, "h264")).bpp == 16
