"""Verified downloads into the wssdl_d2 cache.

A file is fetched with ``urllib`` (http, https, file URLs) into a temporary sibling of its cache path while its
sha256 is computed, and moved into place (atomic rename) only when the hash matches the index. A mismatch removes
only that temporary file and raises :class:`ChecksumError`; a cached file that no longer matches is reported, not
deleted (it may be the user's).

Cache folder: ``$WSSDL_CACHE`` if set, else ``~/.cache/wssdl_d2``.
"""
import hashlib
import logging
import os
import urllib.error
import urllib.request
from typing import Optional, Union

from ..errors import UserError
from ..utils.atomic import atomic_open

logger = logging.getLogger(__name__)
CHUNK = 1 << 20


class DownloadError(UserError, RuntimeError):
    """A checkpoint could not be fetched (network, missing file on the server)."""


class ChecksumError(DownloadError):
    """A downloaded or cached file does not have the sha256 the checkpoint index promises."""


def default_cache_dir() -> str:
    """``$WSSDL_CACHE`` or ``~/.cache/wssdl_d2``."""
    return os.path.expanduser(os.environ.get("WSSDL_CACHE") or os.path.join("~", ".cache", "wssdl_d2"))


def file_sha256(path: Union[str, os.PathLike]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_download(url: str, sha256: str, relative_path: str, cache_dir: Optional[str] = None,
                    timeout: float = 60) -> str:
    """Local path of ``url``'s file under ``<cache>/checkpoints/<relative_path>``, downloaded if not cached.

    Args:
        url (str): where the file is published.
        sha256 (str): its expected hex sha256 (from the checkpoint index).
        relative_path (str): its path in the cache's ``checkpoints`` folder (``BUSI/wssdl/model_final_<hash>.pth``).
        cache_dir (str): defaults to :func:`default_cache_dir`.
    Raises:
        ChecksumError: the download or the cached file has another hash.
        DownloadError: the URL cannot be read.
    """
    if os.path.isabs(relative_path) or ".." in relative_path.replace("\\", "/").split("/"):
        raise ValueError(f"checkpoint file name {relative_path!r} must be a relative path inside the cache")
    target = os.path.join(cache_dir or default_cache_dir(), "checkpoints", relative_path)
    sha256 = sha256.lower()
    if os.path.isfile(target):
        actual = file_sha256(target)
        if actual == sha256:
            logger.info(f"Using cached {target}")
            return target
        raise ChecksumError(
            f"{target}: cached file has sha256 {actual}, but the checkpoint index expects {sha256} for {url}. "
            f"It is left as it is; delete it to download the published file again")
    logger.info(f"Downloading {url} to {target}")
    with atomic_open(target, "wb") as out:  # a temporary sibling, renamed into place only if no error is raised
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as error:
            raise DownloadError(f"cannot download {url}: {getattr(error, 'reason', error)}") from error
        if digest.hexdigest() != sha256:
            raise ChecksumError(
                f"{url}: the downloaded file has sha256 {digest.hexdigest()}, but the checkpoint index expects "
                f"{sha256} (corrupted download or a changed file on the server). The partial download was removed; "
                f"nothing else was touched")
    return target
