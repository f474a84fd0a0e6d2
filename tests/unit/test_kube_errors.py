"""Kubernetes API failures as one line: what failed, the API server's own message, what to do."""

import json

import urllib3
from kubernetes.client.rest import ApiException

from loco_lan import kube


def api_exception(status: int, reason: str, message: str) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "message": message})
    return exc


def test_forbidden_names_the_object_and_says_grant_it():
    exc = api_exception(403, "Forbidden", 'pods is forbidden: User "ci" cannot list resource "pods" in "loco"')
    error = kube.api_error(exc, "listing the emulator pods")
    assert str(error) == (
        'listing the emulator pods failed: 403 Forbidden: pods is forbidden: User "ci" cannot list resource '
        '"pods" in "loco"; the account lacks an RBAC permission: grant it with a Role (the message names the '
        "verb and resource)")
    assert error.status == 403 and error.reason == "kube_api" and "\n" not in str(error)


def test_a_body_that_is_not_json_still_gives_a_line():
    exc = ApiException(status=503, reason="Service Unavailable")
    exc.body = "<html>upstream down</html>"
    assert str(kube.api_error(exc)) == ("Kubernetes API call failed: 503 Service Unavailable: Service Unavailable; "
                                        "the API server failed: check its health, retry later")


def test_a_timeout_names_the_server_and_says_check_it():
    pool = urllib3.HTTPSConnectionPool("10.0.0.1", 6443)
    timeout = urllib3.exceptions.ReadTimeoutError(pool, "/api/v1/pods", "Read timed out. (read timeout=30)")
    error = kube.api_error(urllib3.exceptions.MaxRetryError(pool, "/api/v1/pods", timeout))
    assert str(error) == ("Kubernetes API call failed: the API server at 10.0.0.1:6443 did not answer (Read timed "
                          "out. (read timeout=30)); check that it is running and reachable from here, then retry")


def test_a_failed_websocket_handshake_is_one_line():
    # What the client raises when an exec handshake times out: status 0, the text in the reason.
    error = kube.api_error(ApiException(status=0, reason="_ssl.c:975: The handshake operation timed out"),
                           "command 'sh' in pod loco/uploader")
    assert str(error) == ("command 'sh' in pod loco/uploader failed: the API server did not answer (_ssl.c:975: "
                          "The handshake operation timed out); check that it is running and reachable from here, "
                          "then retry")


def test_every_call_gets_the_default_timeouts_unless_it_sets_one():
    seen = []
    timed = kube._with_timeout(lambda *args, _request_timeout=None, **kwargs: seen.append(_request_timeout))
    timed("GET", "/api")
    timed("GET", "/api", _request_timeout=300)
    assert seen == [(kube.CONNECT_TIMEOUT, kube.READ_TIMEOUT), 300]
