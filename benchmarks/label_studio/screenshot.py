"""A screenshot of a Label Studio task page as an expert sees it, taken with headless Chromium (Debian's
``chromium``), as evidence that the pushed pre-annotations show.

Logs in through Label Studio's login form (``requests``), hands the session cookie to Chromium and drives it over
the DevTools protocol on ``--remote-debugging-pipe`` (JSON messages separated by NUL on file descriptors 3 / 4),
so nothing beyond the standard library, ``requests`` and the ``chromium`` binary is needed.

    python benchmarks/label_studio/screenshot.py --url http://127.0.0.1:8080 --email E --password P \\
        --project 1 --task 1 --out task.png
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from urllib.parse import urlparse

import requests


class DevToolsPipe:
    """Chromium's DevTools protocol over --remote-debugging-pipe."""

    def __init__(self, chromium, width, height):
        self.profile = tempfile.mkdtemp(prefix="ls_chromium_")
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()

        def child_fds():
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"], pass_fds=sorted({3, 4, cmd_r, res_w}),  # preexec_fn runs before the other fds close
            preexec_fn=child_fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(res_w)
        self.next_id, self.buffer, self.events = 0, b"", []

    def _read_message(self, deadline):
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.res_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, session=None, timeout=60.0):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.cmd_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def login_cookies(url, email, password):
    """Label Studio's session cookies after its login form."""
    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=30)
    answer = session.post(f"{url}/user/login/", data={"email": email, "password": password,
                                                       "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
                          headers={"Referer": f"{url}/user/login/"}, timeout=30)
    if "sessionid" not in session.cookies:
        raise RuntimeError(f"login to {url} failed (HTTP {answer.status_code})")
    return dict(session.cookies)


def screenshot_task(url, email, password, project, task, out, width=1400, height=860, settle=3.0,
                    timeout=180.0, chromium=None):
    """Write a PNG of task ``task``'s labelling page in project ``project`` to ``out``. Returns ``out``."""
    chromium = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium)")
    cookies = login_cookies(url, email, password)
    browser = DevToolsPipe(chromium, width, height)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        host = urlparse(url).hostname
        for name, value in cookies.items():
            browser.call("Network.setCookie", {"name": name, "value": value, "domain": host, "path": "/"}, session)
        browser.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                            "deviceScaleFactor": 1, "mobile": False}, session)
        browser.call("Page.enable", {}, session)
        browser.call("Page.navigate", {"url": f"{url}/projects/{project}/data?task={task}"}, session)
        # the React labelling app loads the task, its image and the predictions: wait until the image is drawn
        ready = ("!document.body.innerText.includes('Downloading image') && "
                 "document.querySelectorAll('canvas').length > 0 && "
                 "Array.from(document.images).filter(i => i.src.includes('/data/upload')).length > 0 && "
                 "Array.from(document.images).filter(i => i.src.includes('/data/upload'))"
                 ".every(i => i.complete && i.naturalWidth > 0)")
        deadline = time.monotonic() + timeout
        while not browser.call("Runtime.evaluate", {"expression": ready, "returnByValue": True},
                               session)["result"].get("value"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the task page did not finish loading within {timeout:.0f} s")
            time.sleep(1.0)
        time.sleep(settle)
        png = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"}, session)["data"])
    finally:
        browser.close()
    with open(out, "wb") as f:
        f.write(png)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--project", type=int, required=True)
    parser.add_argument("--task", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the image is drawn (default 3)")
    args = parser.parse_args()
    print(screenshot_task(args.url, args.email, args.password, args.project, args.task, args.out,
                          settle=args.settle))


if __name__ == "__main__":
    main()
