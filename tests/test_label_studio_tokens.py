"""The Label Studio client's credentials against a fake server on 127.0.0.1 (http.server in a thread): a personal
access token's short-lived access token is refreshed once on 401 and the call retried; a refresh answer without
``access`` is a clear error naming the server; no redirect is followed with credentials, and the host a redirect
points at receives nothing. The same expiry against the real server is in test_label_studio.py."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from wssdl_d2.active.label_studio import LabelStudioClient, LabelStudioError, connect

REFRESH = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"  # a JWT's shape: three dotted parts
LEGACY = "f" * 40
pytestmark = pytest.mark.timeout(60)


class FakeLabelStudio:
    """A Label Studio stand-in on 127.0.0.1. It issues access tokens ``access-1``, ``access-2``, ... for
    :data:`REFRESH`; :meth:`expire` makes every issued one invalid (as five minutes do). ``refresh_answer``
    replaces the refresh answer, ``refresh_refused`` refuses it, ``useless_tokens`` issues access tokens that are
    refused all the same; ``redirect`` maps a path to the URL a 307 points at. Every request is recorded
    in ``seen`` as (method, path, Authorization header, body)."""

    def __init__(self, host_name="127.0.0.1"):
        self.seen, self.valid, self.issued = [], set(), 0
        self.refresh_answer, self.redirect, self.refresh_refused, self.useless_tokens = None, {}, False, False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body=None, headers=()):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                path = urlsplit(self.path).path
                auth = self.headers.get("Authorization", "")
                fake.seen.append((self.command, path, auth, body))
                if path in fake.redirect:
                    return self._answer(307, headers=[("Location", fake.redirect[path])])
                if path == "/api/token/refresh/":
                    if fake.refresh_answer is not None:
                        return self._answer(200, fake.refresh_answer)
                    if fake.refresh_refused or json.loads(body or "{}").get("refresh") != REFRESH:
                        return self._answer(401, {"detail": "Token is invalid", "code": "token_not_valid"})
                    fake.issued += 1
                    if not fake.useless_tokens:
                        fake.valid.add(f"access-{fake.issued}")
                    return self._answer(200, {"access": f"access-{fake.issued}"})
                scheme, _, token = auth.partition(" ")
                if not ((scheme == "Bearer" and token in fake.valid) or (scheme == "Token" and token == LEGACY)):
                    return self._answer(401, {"detail": "Given token not valid for any token type",
                                              "code": "token_not_valid"})
                if path == "/api/current-user/whoami":
                    return self._answer(200, {"id": 1, "email": "expert@example.org"})
                if path == "/api/projects":
                    if self.command == "POST":
                        return self._answer(201, {"id": 7, **json.loads(body)})
                    return self._answer(200, {"results": [], "next": None})
                return self._answer(404, {"detail": "not found"})

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://{host_name}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def expire(self):
        self.valid.clear()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    server = FakeLabelStudio()
    yield server
    server.close()


@pytest.fixture
def elsewhere():
    """Another server, named by another host name (localhost, still loopback) and port: a redirect's target."""
    server = FakeLabelStudio(host_name="localhost")
    yield server
    server.close()


def calls(server, path):
    return [s for s in server.seen if s[1] == path]


def test_an_expired_access_token_is_refreshed_once_and_the_call_retried(fake):
    client = connect(fake.url, {"LABEL_STUDIO_API_KEY": REFRESH}, timeout=10)
    assert fake.issued == 1
    fake.expire()  # the access token's five minutes are over
    assert client.whoami()["id"] == 1
    assert fake.issued == 2
    whoami = calls(fake, "/api/current-user/whoami")
    assert [auth for _, _, auth, _ in whoami] == ["Bearer access-1", "Bearer access-1", "Bearer access-2"]
    # a POST with a body is re-sent whole after the refresh
    fake.expire()
    project = client._call("POST", "/api/projects", json={"title": "round 1", "label_config": "<View/>"})
    assert project["title"] == "round 1" and fake.issued == 3
    posts = [s for s in calls(fake, "/api/projects") if s[0] == "POST"]
    assert [auth for _, _, auth, _ in posts] == ["Bearer access-2", "Bearer access-3"]
    assert json.loads(posts[0][3]) == json.loads(posts[1][3])


def test_a_refused_refresh_is_one_clear_error_without_a_loop(fake):
    client = connect(fake.url, {"LABEL_STUDIO_API_KEY": REFRESH}, timeout=10)
    fake.expire()
    fake.refresh_refused = True  # the personal access token was revoked
    with pytest.raises(LabelStudioError, match="refused the API key"):
        client.whoami()
    assert len(calls(fake, "/api/token/refresh/")) == 2 and len(calls(fake, "/api/current-user/whoami")) == 2
    # after a good refresh, an access token the server still refuses is not refreshed again and again
    fake.refresh_refused = False
    client = connect(fake.url, {"LABEL_STUDIO_API_KEY": REFRESH}, timeout=10)
    refreshes = len(calls(fake, "/api/token/refresh/"))
    fake.expire()
    fake.useless_tokens = True  # the refresh answers, the new access token is refused all the same
    with pytest.raises(LabelStudioError, match="refused the API key"):
        client.whoami()
    assert len(calls(fake, "/api/token/refresh/")) == refreshes + 1


def test_a_legacy_token_is_never_refreshed(fake):
    client = LabelStudioClient(fake.url, LEGACY, timeout=10)
    assert client.whoami()["id"] == 1
    with pytest.raises(LabelStudioError, match="refused the API key"):
        LabelStudioClient(fake.url, "0" * 40, timeout=10).whoami()
    assert not calls(fake, "/api/token/refresh/")


def test_a_refresh_answer_without_access_is_a_clear_error(fake):
    fake.refresh_answer = {"detail": "ok", "refresh": REFRESH}
    with pytest.raises(LabelStudioError) as err:
        connect(fake.url, {"LABEL_STUDIO_API_KEY": REFRESH}, timeout=10)
    assert fake.url in str(err.value) and "access" in str(err.value) and "/api/token/refresh/" in str(err.value)
    fake.refresh_answer = ["not", "an", "object"]
    with pytest.raises(LabelStudioError, match="access"):
        connect(fake.url, {"LABEL_STUDIO_API_KEY": REFRESH}, timeout=10)


def test_no_redirect_is_followed_with_credentials(fake, elsewhere):
    # an authenticated call: 307 to another host; the header and the body must not reach it
    target = elsewhere.url + "/api/current-user/whoami"
    fake.redirect["/api/current-user/whoami"] = target
    with pytest.raises(LabelStudioError) as err:
        connect(fake.url, {"LABEL_STUDIO_API_KEY": LEGACY}, timeout=10)
    assert target in str(err.value) and "redirect" in str(err.value)
    assert elsewhere.seen == []
    # a POST with a body (json) redirected with 307
    fake.redirect = {"/api/projects": elsewhere.url + "/api/projects"}
    client = LabelStudioClient(fake.url, LEGACY, timeout=10)
    with pytest.raises(LabelStudioError, match="redirect"):
        client._call("POST", "/api/projects", json={"title": "t"})
    assert elsewhere.seen == []
    # the refresh: the personal access token itself travels in the body
    fake.redirect = {"/api/token/refresh/": elsewhere.url + "/api/token/refresh/"}
    with pytest.raises(LabelStudioError) as err:
        connect(fake.url, {"LABEL_STUDIO_API_KEY": REFRESH}, timeout=10)
    assert elsewhere.url in str(err.value)
    assert elsewhere.seen == [] and not any(REFRESH in body for *_, body in elsewhere.seen)
    # not even to the same server: a redirect is an error naming where it pointed
    fake.redirect = {"/api/current-user/whoami": fake.url + "/api/current-user/whoami/"}
    with pytest.raises(LabelStudioError, match="redirect"):
        connect(fake.url, {"LABEL_STUDIO_API_KEY": LEGACY}, timeout=10)
