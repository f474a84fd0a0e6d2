"""The uploader pod's cleanup never hides why an upload failed.  The cluster side is faked (a pure
check of the order of errors); the real faults are in tests/integration/reliability."""

import logging

import pytest
from kubernetes.client.rest import ApiException

from loco_lan.diskupload import DiskUploader, UploadRequest
from loco_lan.errors import LocoError

FULL = "PVC loco/disk ran out of space after 12.0 MiB of the 98.0 MiB image"


class Faulty(DiskUploader):
    """No cluster: a new claim, an uploader that starts, a send that fails as ``send`` says and a
    delete of the uploader pod that fails as ``delete`` says (None: they succeed)."""

    def __init__(self, image, send=None, delete=None, start=None):
        super().__init__(None, UploadRequest(image=image, pvc="disk", namespace="loco"))
        self.faults = {"send": send, "delete": delete, "start": start}
        self.deletes = 0

    def _fail(self, what):
        if self.faults[what] is not None:
            raise self.faults[what]

    def _claim(self):
        return None

    def _create_claim(self, image_size):
        pass

    def _start_uploader(self):
        self._fail("start")

    def _send(self, size, hash_locally):
        self._fail("send")
        return 0, size, "ab" * 32

    def _verify_and_install(self, sha, size):
        pass

    def _delete_uploader(self):
        self.deletes += 1
        self._fail("delete")


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "win98.qcow2"
    path.write_bytes(b"QFI\xfb" + bytes(4092))
    return path


def stalled() -> ApiException:
    return ApiException(status=503, reason="Service Unavailable")


def test_a_failed_cleanup_is_logged_and_noted_not_raised_in_place_of_the_real_error(image, caplog):
    uploader = Faulty(image, send=LocoError(FULL), delete=stalled())
    with caplog.at_level(logging.WARNING), pytest.raises(LocoError) as failed:
        uploader.run()
    assert str(failed.value) == FULL
    assert failed.value.__notes__ == ["also: deleting the uploader pod loco/disk-upload failed: 503 Service "
                                      "Unavailable: Service Unavailable; the API server failed: check its health, "
                                      "retry later"]
    assert "after the failed upload, deleting the uploader pod loco/disk-upload failed: 503" in caplog.text
    assert uploader.deletes == 1


def test_an_uploader_that_never_starts_keeps_its_own_error_too(image):
    uploader = Faulty(image, start=LocoError("pod loco/disk-upload not ready in 300 s"), delete=OSError("gone"))
    with pytest.raises(LocoError, match="not ready in 300 s") as failed:
        uploader.run()
    assert failed.value.__notes__ == ["also: gone"]


def test_after_a_good_upload_a_failed_cleanup_is_the_error(image):
    with pytest.raises(ApiException, match="Service Unavailable"):
        Faulty(image, delete=stalled()).run()
