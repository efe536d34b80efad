"""Reading a config file without running code from it: the project's one YAML config reader.

Detectron2's ``CfgNode.merge_from_file`` defaults to ``allow_unsafe=True``: a tag such as
``!!python/object/apply:os.system`` in a config file (or in a ``_BASE_`` it names) then runs when the file is read.
Configs travel between people (a shared run's ``config.yaml``, a lab's model zoo), so here every config is read
with ``yaml.safe_load`` only, which builds plain values (mappings, lists, strings, numbers, booleans, null) and
never Python objects. A file with a Python tag is refused with :class:`ConfigError` naming it.

``_BASE_`` (a path or a list of paths, relative to the file that names them, ``~`` expanded) is followed as
Detectron2 follows it: the bases are merged in order, then the file's own keys on top. A base given as a URL is
refused (download it and name the local file), and so is a chain of bases that comes back to a file already in it.
"""
import os
from typing import Any, Dict, List, Optional, Sequence

import yaml

from .errors import UserError

BASE_KEY = "_BASE_"


class ConfigError(UserError, ValueError):
    """A config file (or a config value) that cannot be used. ``str(err)`` reads ``"<file>: <problem>"`` (just the
    problem when no file is involved); ``path`` and ``problem`` hold the parts."""

    def __init__(self, path: Optional[str], problem: str):
        self.path = os.fspath(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def _parse(path: str) -> Dict[str, Any]:
    """The YAML mapping in ``path``, read with ``yaml.safe_load`` ({} for an empty file)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(path, "config file not found") from None
    except OSError as err:
        raise ConfigError(path, f"cannot read the config file ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "not a text (UTF-8) file") from None
    except yaml.constructor.ConstructorError as err:
        where = f" at line {err.problem_mark.line + 1}" if err.problem_mark is not None else ""
        if "python/" in str(err.problem or ""):
            raise ConfigError(path, f"refused: the file holds a Python object tag{where} ({err.problem}), which "
                                    "would run code when loaded; a config holds plain values only (nothing was run)"
                              ) from None
        raise ConfigError(path, f"not a plain YAML config{where}: {err.problem}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(path, f"not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, f"a config file holds KEY: value pairs, not a {type(data).__name__}")
    return data


def _merge_into(overlay: Dict[str, Any], base: Dict[str, Any], path: str, prefix: str = "") -> None:
    """``overlay``'s keys into ``base`` (nested mappings merged key by key, anything else replaced), in place."""
    for key, value in overlay.items():
        if isinstance(value, dict) and key in base:
            if not isinstance(base[key], dict):
                raise ConfigError(path, f"{prefix}{key} is a group of keys here but a single value in its _BASE_")
            _merge_into(value, base[key], path, f"{prefix}{key}.")
        else:
            base[key] = value


def _base_paths(data: Dict[str, Any], path: str) -> List[str]:
    bases = data.pop(BASE_KEY)
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(path, f"{BASE_KEY} must be a file name or a list of file names, not {bases!r}")
    out = []
    for base in bases:
        if "://" in base:
            raise ConfigError(path, f"{BASE_KEY} {base}: a base config must be a local file (download it and give "
                                    "its path)")
        base = os.path.expanduser(base)
        out.append(base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base))
    return out


def read_config_file(path: str, _chain: Sequence[str] = ()) -> Dict[str, Any]:
    """The config in ``path`` as nested dicts, its ``_BASE_`` files merged under it, every file read with
    ``yaml.safe_load``. Raises :class:`ConfigError` naming the file for a missing or unreadable file, bad YAML, a
    Python tag (nothing is run), a bad or remote ``_BASE_`` and a ``_BASE_`` loop."""
    path = os.fspath(path)
    real = os.path.realpath(path)
    if real in _chain:
        loop = " -> ".join([*_chain[_chain.index(real):], real])
        raise ConfigError(path, f"{BASE_KEY} loop: {loop}")
    data = _parse(path)
    if BASE_KEY not in data:
        return data
    merged: Dict[str, Any] = {}
    for base in _base_paths(data, path):
        if not os.path.isfile(base):
            raise ConfigError(path, f"{BASE_KEY} {base}: config file not found")
        _merge_into(read_config_file(base, (*_chain, real)), merged, path)
    _merge_into(data, merged, path)
    return merged


def merge_config_file(cfg, path: str) -> None:
    """Merge the config file ``path`` (:func:`read_config_file`) into the Detectron2 CfgNode ``cfg`` (unfrozen), in
    place, as ``cfg.merge_from_file`` does (a config of an older Detectron2 config version is upgraded) but without
    ever reading YAML unsafely. Raises :class:`ConfigError` naming the file for an unreadable file, an unknown key
    or a value of the wrong type."""
    from detectron2.config.compat import downgrade_config, guess_version, upgrade_config

    data = read_config_file(path)
    try:
        loaded = type(cfg)(data)
        version = loaded.get("VERSION", None)
        if version is None:
            version = guess_version(loaded, path)
        if version > cfg.VERSION:
            raise ConfigError(path, f"written for Detectron2 config VERSION {version}, newer than this one "
                                    f"({cfg.VERSION})")
        if version == cfg.VERSION:
            cfg.merge_from_other_cfg(loaded)
            return
        old = downgrade_config(cfg, to_version=version)
        old.merge_from_other_cfg(loaded)
        upgraded = upgrade_config(old)
        cfg.clear()
        cfg.update(upgraded)
    except ConfigError:
        raise
    except (AssertionError, KeyError, ValueError, TypeError) as err:  # yacs: unknown key, type mismatch
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise ConfigError(path, str(message)) from None
