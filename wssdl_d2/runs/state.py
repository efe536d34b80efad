"""The resumable state of a run: one JSON file in the run folder, written atomically after every change, holding
the fingerprint of the config the run was started with, so a folder is never continued with another config.

Two shapes, one class (:class:`RunState`):

- one run (a cross-validation fold, a site adaptation; ``crossval_state.json``): the record's fields at the top,
  ``{"config", "config_file", "fold", "data", "train", "test", "max_iter", "fingerprint", "status",
  "train_seconds", "eval_seconds"[, "error"]}``, opened with :meth:`RunState.open_run`;
- a run of steps (self-training rounds, annotation-simulation steps; ``selftrain_state.json``,
  ``simulation_state.json``): ``{"version": 1, "settings": {...}, "steps": {str(k): {...}}[, "fingerprint"]}``,
  opened with :meth:`RunState.open`, which also compares the run's ``settings``.

A fingerprint is the sha256 of the config's YAML with OUTPUT_DIR blanked (a run folder may be moved). A run started
with an older wssdl_d2, before config keys now at their defaults were added, is still recognised
(:func:`config_matches`).
"""
import hashlib
import json
import logging
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from detectron2.config import CfgNode

from ..errors import UserError
from ..utils.atomic import atomic_write_json

logger = logging.getLogger(__name__)

#: The state file of one run (a cross-validation fold or a site adaptation).
RUN_STATE_FILE = "crossval_state.json"
#: The format of a run of steps (``"version"``).
STATE_VERSION = 1


class StateError(UserError, ValueError):
    """A state file or run folder that cannot be continued (other settings or config, unreadable); the message
    names it."""


def config_fingerprint(cfg: CfgNode, ignore: Sequence[str] = ()) -> str:
    """sha256 (64 hex digits) of the config's YAML with OUTPUT_DIR blanked (a run folder may be moved), and the
    dotted keys ``ignore`` (settings a resumed run may change, e.g. ``WSSDL.SELFTRAIN.ROUNDS``) blanked too."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = ""
    for key in ignore:
        *path, last = key.split(".")
        node = cfg
        for part in path:
            node = node[part]
        node[last] = ""
    return hashlib.sha256(cfg.dump().encode()).hexdigest()


def fingerprint_before_new_keys(cfg: CfgNode, saved_config: Union[str, Mapping[str, Any]],
                                ignore: Sequence[str] = ()) -> Optional[str]:
    """The fingerprint ``cfg`` had before the config keys it has and the run's ``saved_config`` (a config.yaml
    path, or its parsed content) lacks were added to wssdl_d2: those keys dropped when each is at its default, so
    a run started with an older wssdl_d2 is still recognised. None when a key the saved config lacks has a
    non-default value here (the run did not have that setting) or the file is unreadable."""
    import yaml
    from detectron2.config import get_cfg

    from ..config import add_wssdl_config

    try:
        if isinstance(saved_config, str):
            with open(saved_config) as f:
                saved = yaml.safe_load(f)
        else:
            saved = saved_config
    except (OSError, yaml.YAMLError):
        return None
    cfg = cfg.clone()
    cfg.defrost()

    def prune(node, saved_node, default_node) -> bool:
        for key in list(node.keys()):
            if not isinstance(saved_node, dict) or key not in saved_node:
                if not isinstance(default_node, dict) or key not in default_node or node[key] != default_node[key]:
                    return False
                del node[key]
            elif isinstance(node[key], CfgNode) and not prune(node[key], saved_node[key], default_node.get(key)):
                return False
        return True

    return config_fingerprint(cfg, ignore) if prune(cfg, saved, add_wssdl_config(get_cfg())) else None


def config_matches(cfg: CfgNode, fingerprint: Optional[str], saved_config: Union[str, Mapping[str, Any]],
                   ignore: Sequence[str] = ()) -> bool:
    """Whether the recorded ``fingerprint`` of a run (or evaluation) is ``cfg``'s, now or before config keys at their
    defaults here were added (:func:`fingerprint_before_new_keys` with the run's ``saved_config`` path)."""
    return (fingerprint == config_fingerprint(cfg, ignore)
            or fingerprint == fingerprint_before_new_keys(cfg, saved_config, ignore))


class RunState:
    """A run's JSON state file ``path`` and its content ``data`` (see the module docstring for both shapes)."""

    def __init__(self, path: str, data: Dict[str, Any]):
        self.path = path
        self.data = data

    # ------------------------------------------------------------------------------------------------ one run
    @classmethod
    def read(cls, run_dir: str, name: str = RUN_STATE_FILE) -> Optional["RunState"]:
        """The state of the one run in ``run_dir``, or None when there is no state file. Raises StateError naming
        the file when it is unreadable or lacks ``status`` / ``fingerprint``."""
        path = os.path.join(run_dir, name)
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as err:
            raise StateError(f"{path}: unreadable state file ({err}); remove the run folder to start it again") \
                from None
        if not isinstance(data, dict) or "status" not in data or "fingerprint" not in data:
            raise StateError(f"{path}: not a cross-validation state file")
        return cls(path, data)

    @classmethod
    def open_run(cls, run_dir: str, cfg: CfgNode, about: Mapping[str, Any], name: str = RUN_STATE_FILE,
                 saved_config: Optional[str] = None) -> "RunState":
        """The state of the one run of the frozen ``cfg`` in ``run_dir``: read and checked against ``cfg``'s
        fingerprint when the folder has one, else new (status ``new``; ``run_dir`` is made and ``cfg`` written to
        ``<run_dir>/config.yaml``). ``about``: what the state records of the run (``config`` name,
        ``config_file``, ``fold``, ``data``). Raises StateError for a folder that holds another config's run (its
        ``saved_config``, default ``<run_dir>/config.yaml``, lets a run of an older wssdl_d2 continue) or files
        not made by a run."""
        state = cls.read(run_dir, name)
        fingerprint = config_fingerprint(cfg)
        if state is None:
            if os.path.isdir(run_dir) and os.listdir(run_dir):
                raise StateError(f"{run_dir}: not empty and has no {name}; it was not made by cross-validation "
                                 "and is not overwritten (choose another --out)")
            os.makedirs(run_dir, exist_ok=True)
            data = dict(about, train=list(cfg.DATASETS.TRAIN), test=list(cfg.DATASETS.TEST),
                        max_iter=int(cfg.SOLVER.MAX_ITER), fingerprint=fingerprint, status="new",
                        train_seconds=0.0, eval_seconds=0.0)
            with open(os.path.join(run_dir, "config.yaml"), "w") as f:
                f.write(cfg.dump())
            return cls(os.path.join(run_dir, name), data)
        if state.data["fingerprint"] != fingerprint:
            if not config_matches(cfg, state.data["fingerprint"], saved_config or os.path.join(run_dir, "config.yaml")):
                raise StateError(f"{state.path}: this run was started with another config "
                                 f"({state.data.get('config_file')}, status {state.data['status']}); it is not "
                                 "continued or overwritten with the new settings: choose another --out")
            logger.info("%s: started before wssdl_d2 added config keys that are at their defaults here; continued",
                        run_dir)
        return state

    @property
    def status(self) -> Optional[str]:
        """The one run's status: ``new``, ``training``, ``trained``, ``evaluated`` or ``failed``."""
        return self.data.get("status")

    def set(self, **fields: Any) -> None:
        """Set top-level fields of the one run's record and save."""
        self.data.update(fields)
        self.save()

    # ------------------------------------------------------------------------------------------ a run of steps
    @classmethod
    def open(cls, folder: str, name: str, settings: Dict[str, Any], resume: bool = False, overwrite: bool = False,
             cfg: Optional[CfgNode] = None, ignore: Sequence[str] = ()) -> "RunState":
        """The state of the run of steps in ``folder``. An existing state file is continued with ``resume`` (its
        settings must equal ``settings``, and, when ``cfg`` is given, its config fingerprint ``cfg``'s, with the
        dotted keys ``ignore`` left out: a state of an older wssdl_d2 without a fingerprint takes ``cfg``'s),
        replaced with ``overwrite``, and otherwise an error (nothing is overwritten silently)."""
        path = os.path.join(folder, name)
        settings = json.loads(json.dumps(settings))  # as stored: tuples become lists
        fingerprint = config_fingerprint(cfg, ignore) if cfg is not None else None
        if os.path.exists(path) and not overwrite:
            if not resume:
                raise StateError(f"{path} exists (an earlier run): pass --resume to continue it or --overwrite to "
                                 "start again")
            try:
                with open(path) as f:
                    data = json.load(f)
            except (OSError, json.JSONDecodeError) as err:
                raise StateError(f"{path}: cannot read the state file ({err})") from None
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise StateError(f"{path}: not a state file of this version")
            old = data.get("settings", {})
            diff = {k: (old.get(k), settings.get(k)) for k in set(old) | set(settings) if old.get(k) != settings.get(k)}
            if diff:
                listing = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))
                raise StateError(f"{path}: --resume with other settings than the run it continues ({listing}); "
                                 "use the same settings or a new output folder")
            state = cls(path, data)
            if fingerprint is not None:
                state._check_steps_fingerprint(cfg, fingerprint, ignore)
            return state
        data: Dict[str, Any] = {"version": STATE_VERSION, "settings": settings, "steps": {}}
        if fingerprint is not None:
            data.update(fingerprint=fingerprint, config=cfg.dump())
        state = cls(path, data)
        state.save()
        return state

    def _check_steps_fingerprint(self, cfg: CfgNode, fingerprint: str, ignore: Sequence[str]) -> None:
        """Refuse (StateError) a resumed run of steps whose recorded config is not ``cfg``; record ``cfg``'s when
        the state has none (started by a wssdl_d2 that did not record it)."""
        recorded = self.data.get("fingerprint")
        if recorded is None:
            self.data.update(fingerprint=fingerprint, config=cfg.dump())
            self.save()
            return
        if recorded == fingerprint:
            return
        import yaml

        try:
            saved = yaml.safe_load(self.data.get("config") or "")
        except yaml.YAMLError:
            saved = None
        matches = isinstance(saved, dict) and config_matches(cfg, recorded, saved, ignore)
        if not matches:
            raise StateError(f"{self.path}: --resume with another config than the run it continues (a key other "
                             "than the state's settings changed); use the same config or a new output folder")

    def step(self, k: Union[int, str]) -> Dict[str, Any]:
        """The record of step ``k`` (a dict, empty when it has not started)."""
        return self.data["steps"].setdefault(str(k), {})

    def update(self, k: Union[int, str], **fields: Any) -> None:
        """Set fields of step ``k``'s record and save."""
        self.step(k).update(fields)
        self.save()

    def save(self) -> None:
        """Write the state file atomically (a stop mid-write leaves the previous state)."""
        atomic_write_json(self.path, self.data, indent=1)
