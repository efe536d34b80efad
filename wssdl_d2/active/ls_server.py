"""A throwaway local Label Studio server: for the tests, the measured round and trying the workflow.

Label Studio (the ``label-studio`` package) pins versions that clash with this project's environment, so it lives
in its own virtual environment, ``<repo>/.venv-ls`` (made by ``tools/setup_env.sh --label-studio``), and runs as a
subprocess: ``label-studio start`` on ``127.0.0.1`` and a free port, with its own data folder (SQLite database,
uploaded images), one user and a legacy API token set at start-up. Its telemetry (Sentry, analytics, the
version check) is switched off: it talks to nothing but its clients.

Most of a first start is Label Studio's database migrations (about a minute on 2 idle cores, many more on a loaded
machine). ``tools/setup_env.sh --label-studio`` therefore migrates an empty, user-less database once,
``.venv-ls/wssdl_migrated.sqlite3`` (:func:`migrate_template`); each server starts from its own copy of it.
"""
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Optional

LS_EXECUTABLE_ENV = "WSSDL_LABEL_STUDIO"
TEMPLATE_NAME = "wssdl_migrated.sqlite3"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_USER = "expert@example.org"


def find_label_studio(explicit: Optional[str] = None) -> Optional[str]:
    """The ``label-studio`` executable: ``explicit``, $WSSDL_LABEL_STUDIO, ``<repo>/.venv-ls/bin/label-studio``,
    or the one on PATH; None when there is none."""
    for candidate in (explicit, os.environ.get(LS_EXECUTABLE_ENV),
                      os.path.join(REPO_ROOT, ".venv-ls", "bin", "label-studio")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("label-studio")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    """A running server: ``url``, the API ``token``, the user's ``email`` / ``password``, its ``data_dir`` and
    ``log_path``, and the ``process``. :meth:`stop` ends it."""

    url: str
    token: str
    email: str
    password: str
    data_dir: str
    log_path: str
    process: subprocess.Popen

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def _server_env(data_dir: str) -> dict:
    env = dict(os.environ, LABEL_STUDIO_BASE_DATA_DIR=data_dir, SENTRY_DSN="", FRONTEND_SENTRY_DSN="",
               LATEST_VERSION_CHECK="false", COLLECT_ANALYTICS="false", PYTHONWARNINGS="ignore")
    env.pop("LABEL_STUDIO_API_KEY", None)
    return env


SETTINGS_MODULE = "wssdl_ls_settings"


def _short_access_token_settings(data_dir: str, seconds: float, env: dict) -> None:
    """Make the server's access tokens (those a personal access token is exchanged for) last ``seconds``.

    Label Studio has no option or environment variable for it: its access tokens take djangorestframework-simplejwt's
    default lifetime, 5 minutes. Its start-up only sets ``DJANGO_SETTINGS_MODULE`` when unset, so a settings module
    in ``data_dir`` that runs Label Studio's settings file in its own namespace (an ``import *`` cannot: that file
    reads ``django.conf.settings`` while it is being imported) and adds ``SIMPLE_JWT['ACCESS_TOKEN_LIFETIME']``
    sets it."""
    with open(os.path.join(data_dir, SETTINGS_MODULE + ".py"), "w") as f:
        f.write("import importlib.util\n"
                "from datetime import timedelta\n\n"
                "_origin = importlib.util.find_spec('label_studio.core.settings.label_studio').origin\n"
                "with open(_origin) as _f:\n"
                "    exec(compile(_f.read(), _origin, 'exec'))\n\n"
                f"SIMPLE_JWT = {{'ACCESS_TOKEN_LIFETIME': timedelta(seconds={float(seconds)!r})}}\n")
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    env["PYTHONPATH"] = os.pathsep.join(p for p in (data_dir, env.get("PYTHONPATH", "")) if p)


def template_path(executable: str) -> str:
    """The migrated template database of the ``label-studio`` in ``<venv>/bin``: ``<venv>/wssdl_migrated.sqlite3``."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(executable))), TEMPLATE_NAME)


def migrate_template(executable: Optional[str] = None, timeout: float = 1800.0) -> str:
    """Migrate an empty database (no user, no project) into :func:`template_path` with ``label-studio version``.
    Returns its path."""
    import tempfile

    executable = find_label_studio(executable)
    if executable is None:
        raise FileNotFoundError("no label-studio executable (tools/setup_env.sh --label-studio installs one)")
    target = template_path(executable)
    with tempfile.TemporaryDirectory(prefix="ls_template_") as work:
        db = os.path.join(work, TEMPLATE_NAME)
        subprocess.run([executable, "version", "--data-dir", work, "--database", db], env=_server_env(work),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=work,
                       check=True, timeout=timeout)
        shutil.copyfile(db, target + ".tmp")
        os.replace(target + ".tmp", target)
    return target


def _healthy(url: str) -> bool:
    import requests

    try:
        return requests.get(url + "/health", timeout=5).status_code == 200
    except requests.exceptions.RequestException:
        return False


def start_local_server(data_dir: str, executable: Optional[str] = None, port: Optional[int] = None,
                       timeout: float = 300.0, access_token_lifetime: Optional[float] = None) -> LocalServer:
    """Start ``label-studio`` on 127.0.0.1 with its data in ``data_dir`` and wait until it answers ``/health``.
    ``access_token_lifetime``: seconds the access tokens of personal access tokens last (Label Studio's default is
    5 minutes; the tests shorten it to see them expire). Raises RuntimeError (with the end of its log) when it exits
    or does not answer within ``timeout`` seconds, FileNotFoundError when no executable is found."""
    executable = find_label_studio(executable)
    if executable is None:
        raise FileNotFoundError("no label-studio executable: run tools/setup_env.sh --label-studio (it installs the "
                                f"server into .venv-ls) or set ${LS_EXECUTABLE_ENV}")
    os.makedirs(data_dir, exist_ok=True)
    port = port or free_port()
    token, password = secrets.token_hex(20), secrets.token_urlsafe(12)
    env = _server_env(data_dir)
    if access_token_lifetime is not None:
        _short_access_token_settings(data_dir, access_token_lifetime, env)
    database = os.path.join(data_dir, "label_studio.sqlite3")
    if os.path.isfile(template_path(executable)) and not os.path.exists(database):
        shutil.copyfile(template_path(executable), database)  # migrated already: the start skips the migrations
    log_path = os.path.join(data_dir, "server.log")
    cmd = [executable, "start", "--no-browser", "--data-dir", data_dir, "--database", database,
           "--internal-host", "127.0.0.1",
           "--port", str(port), "--username", DEFAULT_USER, "--password", password, "--user-token", token,
           "--enable-legacy-api-token", "--log-level", "WARNING"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                   cwd=data_dir)
    server = LocalServer(f"http://127.0.0.1:{port}", token, DEFAULT_USER, password, data_dir, log_path, process)
    deadline = time.monotonic() + timeout
    while not _healthy(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            why = (f"exited with status {process.returncode}" if process.poll() is not None
                   else f"did not answer within {timeout:.0f} s")
            server.stop()
            with open(log_path, errors="replace") as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"Label Studio ({executable}) {why}; the end of {log_path}:\n{tail}")
        time.sleep(1.0)
    return server
