"""Active annotation in Label Studio: push the most informative weak images with the model's boxes as
pre-annotations, pull the experts' boxes back as strong images of a new prepared split.

Talks to Label Studio's REST API with ``requests`` (the ``label-studio`` extra: ``pip install -e .[label-studio]``).
The API key is read from the environment variable :data:`API_KEY_ENV` (``LABEL_STUDIO_API_KEY``), never from a
flag or a file: a legacy token (``Authorization: Token <key>``) or a personal access token (a JWT refresh token,
exchanged at ``/api/token/refresh/`` for an access token sent as ``Bearer``; the access token lasts about 5 minutes,
so a call answered 401 refreshes it once and is sent once more). No redirect is followed: credentials (the header, or
the personal access token in the refresh's body) go to the given server only, and a redirect is an error naming its
target.

**Push** (:func:`push_suggestions`): the project named ``project`` is reused or created with
:data:`~wssdl_d2.active.ls_format.LABEL_CONFIG`. Each of the top-ranked images is decoded as the model sees it
(:func:`~wssdl_d2.data.image_io.load_image`: DICOM included, frame 0), uploaded as PNG, and imported as a task
whose ``data`` keeps ``wssdl_source`` (the image's absolute path, the key that makes a re-push skip it),
``dicom_uid`` (SOPInstanceUID of a DICOM file), the image label, size, rank and informativeness, with one
prediction: the model's detections as rectangles (scores kept), the diagnosis pre-filled with the image label,
and the informativeness as the prediction's ``score`` (Label Studio's data manager sorts by it).

**Pull** (:func:`pull_annotations` and :func:`write_pulled_split`): every task of the project is exported;
the latest submitted annotation of a task becomes a strong image (boxes with ``source: "label_studio"``,
``supervision: "strong"``, the image label) moved from the weak file to the strong file of a new split written
beside the old files (``<stem>_<tag>.json``; existing files are never replaced). Skipped tasks, tasks without a
submitted annotation, an expert's "no mass" (diagnosis normal or no rectangle) on a benign / malignant image,
a diagnosis or rectangle class that contradicts the image label, and unreadable regions are reported, and those
images stay weak.

Every failure to reach the server, a refused key, or an unexpected answer raises :class:`LabelStudioError`
naming the URL; the server is checked before anything is written, locally or remotely.
"""
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2

from ..data.image_io import is_dicom, load_image
from ..data.labels import IMAGE_LABEL_NAMES, MASS_LABELS, image_label_to_class
from ..errors import UserError
from ..selftrain.pseudo_dataset import write_records
from ..utils.atomic import atomic_write_json
from .ls_format import DIAGNOSIS_NAME, IMAGE_NAME, LABEL_CONFIG, RECT_NAME, prediction_result, read_annotation_result

API_KEY_ENV = "LABEL_STUDIO_API_KEY"
SOURCE_KEY = "wssdl_source"
BOX_SOURCE = "label_studio"
MODEL_VERSION = "wssdl_d2"


class LabelStudioError(UserError, RuntimeError):
    """The Label Studio server could not be used (down, key refused, unexpected answer)."""


def api_key_from_env(env: Optional[Mapping[str, str]] = None) -> str:
    """The API key in ``$LABEL_STUDIO_API_KEY``; LabelStudioError when it is unset or empty."""
    key = (os.environ if env is None else env).get(API_KEY_ENV, "").strip()
    if not key:
        raise LabelStudioError(f"set the environment variable {API_KEY_ENV} to your Label Studio API key "
                               "(Account & Settings > Personal Access Token, or a legacy token)")
    return key


class LabelStudioClient:
    """A thin REST client of one Label Studio server (``url``, e.g. ``http://127.0.0.1:8080``)."""

    def __init__(self, url: str, api_key: str, timeout: float = 60.0):
        try:
            import requests  # the label-studio extra
        except ImportError:
            raise LabelStudioError("the Label Studio client needs requests: pip install -e .[label-studio]") from None

        self.url, self.timeout, self._requests = url.rstrip("/"), float(timeout), requests
        self.session = requests.Session()
        self._refresh_token: Optional[str] = None
        if api_key.count(".") == 2:  # a personal access token (JWT refresh token)
            self._refresh_token = api_key
            self._refresh_access()
        else:
            self.session.headers["Authorization"] = f"Token {api_key}"

    def _refresh_access(self) -> None:
        """Exchange the personal access token for a new access token (Label Studio's last about 5 minutes)."""
        path = "/api/token/refresh/"
        answer = self._call("POST", path, json={"refresh": self._refresh_token}, auth=False)
        access = answer.get("access") if isinstance(answer, dict) else None
        if not isinstance(access, str) or not access:
            got = f"keys {sorted(answer)}" if isinstance(answer, dict) else type(answer).__name__
            raise LabelStudioError(f"Label Studio at {self.url}: POST {path} answered without an 'access' token "
                                   f"({got}); is ${API_KEY_ENV} a personal access token of this server?")
        self.session.headers["Authorization"] = f"Bearer {access}"

    def _send(self, method: str, path: str, auth: bool, **kwargs):
        """One request, redirects not followed: a redirect is an error naming its target, so neither the
        Authorization header nor a body with a token (the refresh) is ever sent anywhere but ``self.url``."""
        where = f"Label Studio at {self.url}"
        try:
            response = (self.session if auth else self._requests).request(
                method, self.url + path, timeout=self.timeout, allow_redirects=False, **kwargs)
        except self._requests.exceptions.Timeout:
            raise LabelStudioError(f"{where} did not answer {method} {path} within {self.timeout:.0f} s") from None
        except self._requests.exceptions.RequestException as err:
            raise LabelStudioError(f"{where} is not reachable ({type(err).__name__}: {err})") from None
        if 300 <= response.status_code < 400:
            from urllib.parse import urljoin

            target = urljoin(self.url + path, response.headers.get("Location", ""))
            raise LabelStudioError(f"{where}: {method} {path} answered a redirect (HTTP {response.status_code}) to "
                                   f"{target}; the client follows no redirect with credentials: check the server "
                                   "URL (its scheme, host, port and path prefix) and give the one it serves the "
                                   "API at")
        return response

    def _call(self, method: str, path: str, auth: bool = True, raw: bool = False, **kwargs) -> Any:
        where = f"Label Studio at {self.url}"
        response = self._send(method, path, auth, **kwargs)
        if response.status_code == 401 and auth and self._refresh_token is not None:
            self._refresh_access()  # the access token expired: refresh once, retry once
            response = self._send(method, path, auth, **kwargs)
        if response.status_code in (401, 403):
            raise LabelStudioError(f"{where} refused the API key in ${API_KEY_ENV} (HTTP {response.status_code} "
                                   f"on {path}: {response.text[:200]})")
        if response.status_code >= 400:
            raise LabelStudioError(f"{where}: {method} {path} failed with HTTP {response.status_code}: "
                                   f"{response.text[:500]}")
        if raw:
            return response
        try:
            return response.json()
        except ValueError:
            raise LabelStudioError(f"{where}: {method} {path} did not answer JSON (is {self.url} a Label Studio "
                                   f"server?): {response.text[:200]!r}") from None

    def whoami(self) -> Dict[str, Any]:
        """The user the key belongs to (checks the server and the key)."""
        user = self._call("GET", "/api/current-user/whoami")
        if not isinstance(user, dict) or "id" not in user:
            raise LabelStudioError(f"Label Studio at {self.url}: unexpected answer to whoami: {str(user)[:200]}")
        return user

    def find_project(self, title: str) -> Optional[Dict[str, Any]]:
        """The project titled exactly ``title`` (the first one by id), or None."""
        matches, page = [], 1
        while True:
            answer = self._call("GET", "/api/projects", params={"title": title, "page": page, "page_size": 100})
            items = answer.get("results", []) if isinstance(answer, dict) else answer
            matches += [p for p in items if p.get("title") == title]
            if not isinstance(answer, dict) or not answer.get("next"):
                break
            page += 1
        return min(matches, key=lambda p: p["id"]) if matches else None

    def ensure_project(self, title: str, label_config: str = LABEL_CONFIG) -> Tuple[Dict[str, Any], bool]:
        """(project, created): the project titled ``title``, created with ``label_config`` when absent. An
        existing project must have the config's image, rectangle and diagnosis controls."""
        project = self.find_project(title)
        if project is None:
            return self._call("POST", "/api/projects", json={"title": title, "label_config": label_config}), True
        config = project.get("label_config") or ""
        missing = [name for name in (IMAGE_NAME, RECT_NAME, DIAGNOSIS_NAME) if f'name="{name}"' not in config]
        if missing:
            raise LabelStudioError(f"Label Studio at {self.url}: project {title!r} (id {project['id']}) has another "
                                   f"labelling config (no {', '.join(missing)} control); choose another --project")
        return project, False

    def export_tasks(self, project_id: int) -> List[Dict[str, Any]]:
        """Every task of the project with its annotations and predictions (Label Studio's JSON export)."""
        tasks = self._call("GET", f"/api/projects/{project_id}/export",
                           params={"exportType": "JSON", "download_all_tasks": "true"})
        if not isinstance(tasks, list):
            raise LabelStudioError(f"Label Studio at {self.url}: the export of project {project_id} is not a task list")
        return tasks

    def upload_png(self, project_id: int, name: str, png: bytes) -> str:
        """Upload a PNG to the project without making a task of it; returns the URL a task's data can use."""
        answer = self._call("POST", f"/api/projects/{project_id}/import", params={"commit_to_project": "false"},
                            files={name: (name, png, "image/png")})
        ids = answer.get("file_upload_ids") or []
        if len(ids) != 1:
            raise LabelStudioError(f"Label Studio at {self.url}: upload of {name} gave file uploads {ids}")
        uploads = self._call("GET", f"/api/projects/{project_id}/file-uploads", params={"ids": f"[{ids[0]}]"})
        files = [u.get("file") for u in uploads if u.get("id") == ids[0]]
        if not files or not files[0]:
            raise LabelStudioError(f"Label Studio at {self.url}: file upload {ids[0]} ({name}) not found")
        return "/data/" + files[0].lstrip("/")

    def import_tasks(self, project_id: int, tasks: Sequence[Dict[str, Any]]) -> List[int]:
        """Import tasks (``data`` + ``predictions``) into the project; returns their ids."""
        answer = self._call("POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"},
                            json=list(tasks))
        ids = answer.get("task_ids")
        if ids is None or len(ids) != len(tasks):
            raise LabelStudioError(f"Label Studio at {self.url}: the import answered {str(answer)[:300]} (an "
                                   "asynchronous import, as Label Studio Enterprise does, is not supported)")
        return list(ids)


def connect(url: str, env: Optional[Mapping[str, str]] = None, timeout: float = 60.0) -> LabelStudioClient:
    """A client of ``url`` with the key from the environment, after checking that the server accepts it."""
    client = LabelStudioClient(url, api_key_from_env(env), timeout)
    client.whoami()
    return client


def image_png(file_name: str) -> Tuple[bytes, int, int, Optional[str]]:
    """(PNG bytes, width, height, DICOM SOPInstanceUID or None) of an image as the model reads it (frame 0)."""
    loaded = load_image(file_name, "BGR")
    ok, encoded = cv2.imencode(".png", loaded.pixels)
    if not ok:
        raise ValueError(f"{file_name}: OpenCV could not encode the image as PNG")
    uid = None
    if is_dicom(file_name):
        import pydicom

        uid = str(getattr(pydicom.dcmread(file_name, stop_before_pixels=True), "SOPInstanceUID", "") or "") or None
    height, width = loaded.pixels.shape[:2]
    return encoded.tobytes(), int(width), int(height), uid


def suggestion_task(row: Dict[str, Any], analysis, image_url: str, width: int, height: int,
                    uid: Optional[str], model: str = "", max_boxes: int = 5) -> Dict[str, Any]:
    """The Label Studio task of one ranked row (:func:`~wssdl_d2.active.scoring.rank_images`) and its
    :class:`~wssdl_d2.inference.analysis.ImageAnalysis`: data + one prediction (up to ``max_boxes`` detections,
    diagnosis = the image label, score = the informativeness). ``model``: the checkpoint, kept in the data (the
    prediction's ``model_version`` is always :data:`MODEL_VERSION`, so Label Studio, which shows the predictions
    of the project's model version, shows those of every round)."""
    p = analysis.prediction
    keep = slice(0, max_boxes)
    data = {IMAGE_NAME: image_url, SOURCE_KEY: os.path.abspath(row["file_name"]),
            "file": os.path.basename(row["file_name"]), "image_label": IMAGE_LABEL_NAMES[int(row["image_label"])],
            "width": width, "height": height, "rank": int(row["rank"]), "informativeness": float(row["score"])}
    if uid:
        data["dicom_uid"] = uid
    if model:
        data["model"] = model
    result = prediction_result(p.boxes[keep], p.classes[keep], p.scores[keep], width, height, int(row["image_label"]))
    return {"data": data, "predictions": [{"model_version": MODEL_VERSION, "score": float(row["score"]),
                                           "result": result}]}


def push_suggestions(client: LabelStudioClient, project: str, rows: Sequence[Dict[str, Any]],
                     analyses: Mapping[str, Any], top: int, model: str = "", max_boxes: int = 5) -> Dict[str, Any]:
    """Upload the first ``top`` ranked ``rows`` (with their analyses, keyed by file name) as tasks of the project
    titled ``project`` (created if absent). Images already in the project (same ``wssdl_source``) are skipped.
    Returns {"project_id", "project_created", "created": [file names], "existing": [file names], "task_ids"}."""
    proj, created_project = client.ensure_project(project)
    present = {t.get("data", {}).get(SOURCE_KEY) for t in client.export_tasks(proj["id"])}
    new, existing, tasks = [], [], []
    for row in rows[:top]:
        source = os.path.abspath(row["file_name"])
        if source in present:
            existing.append(row["file_name"])
            continue
        png, width, height, uid = image_png(row["file_name"])
        name = os.path.splitext(os.path.basename(row["file_name"]))[0] + ".png"
        url = client.upload_png(proj["id"], name, png)
        tasks.append(suggestion_task(row, analyses[row["file_name"]], url, width, height, uid, model, max_boxes))
        new.append(row["file_name"])
        present.add(source)
    task_ids = client.import_tasks(proj["id"], tasks) if tasks else []
    return {"project_id": proj["id"], "project_created": created_project, "created": new, "existing": existing,
            "task_ids": task_ids, "url": f"{client.url}/projects/{proj['id']}/data"}


@dataclass
class PullReport:
    """What a pull found. ``strong``: the new strong dataset dicts; the lists hold (task id, file, reason)."""

    project_id: int
    strong: List[Dict[str, Any]] = field(default_factory=list)
    skipped: List[Tuple[int, str, str]] = field(default_factory=list)
    incomplete: List[Tuple[int, str, str]] = field(default_factory=list)
    no_mass: List[Tuple[int, str, str]] = field(default_factory=list)
    conflicts: List[Tuple[int, str, str]] = field(default_factory=list)
    already_strong: List[Tuple[int, str, str]] = field(default_factory=list)
    unknown: List[Tuple[int, str, str]] = field(default_factory=list)

    def summary(self) -> Dict[str, Any]:
        lists = ("skipped", "incomplete", "no_mass", "conflicts", "already_strong", "unknown")
        return {"project_id": self.project_id, "strong": [r["file_name"] for r in self.strong],
                **{k: [{"task": t, "file": f, "reason": why} for t, f, why in getattr(self, k)] for k in lists}}


def _latest_submitted(task):
    annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    key = (lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))
    return max(annotations, key=key) if annotations else None


def strong_record(weak: Dict[str, Any], answer, task: Dict[str, Any], annotation: Dict[str, Any]) -> Dict[str, Any]:
    """The weak dataset dict made strong with the expert's boxes (XYXY_ABS, class of the image label)."""
    from detectron2.structures import BoxMode

    det_class = image_label_to_class(int(weak["image_label"]))
    anns = [{"bbox": [float(v) for v in box], "bbox_mode": BoxMode.XYXY_ABS, "category_id": det_class, "iscrowd": 0,
             "source": BOX_SOURCE} for box in answer.boxes]
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return {**weak, "supervision": "strong", "annotations": anns, "ls_task": int(task["id"]),
            "ls_annotation": int(annotation["id"]), "annotated_by": str(who) if who is not None else ""}


def pull_annotations(client: LabelStudioClient, project: str, weak_records: Sequence[Dict[str, Any]],
                     strong_records: Sequence[Dict[str, Any]] = ()) -> PullReport:
    """Read the project's annotations back against the ``weak_records`` they were pushed from (dataset dicts,
    matched by absolute file name). Nothing is written; see :func:`write_pulled_split`."""
    proj = client.find_project(project)
    if proj is None:
        raise LabelStudioError(f"Label Studio at {client.url} has no project titled {project!r}")
    weak_by_file = {os.path.abspath(r["file_name"]): r for r in weak_records}
    strong_files = {os.path.abspath(r["file_name"]) for r in strong_records}
    report = PullReport(proj["id"])
    for task in sorted(client.export_tasks(proj["id"]), key=lambda t: t["id"]):
        data = task.get("data") or {}
        source, tid = data.get(SOURCE_KEY), int(task["id"])
        name = os.path.basename(str(source or data.get(IMAGE_NAME, "")))
        if source in strong_files:
            report.already_strong.append((tid, name, "already strong in the given strong set"))
            continue
        if source not in weak_by_file:
            report.unknown.append((tid, name, "not an image of the given weak set"))
            continue
        annotation = _latest_submitted(task)
        if annotation is None:
            if task.get("annotations"):
                report.skipped.append((tid, name, "skipped by the annotator"))
            else:
                report.incomplete.append((tid, name, "no submitted annotation"))
            continue
        weak = weak_by_file[source]
        label = int(weak["image_label"])
        answer = read_annotation_result(annotation.get("result") or [], int(weak["width"]), int(weak["height"]))
        if answer.problems:
            report.conflicts.append((tid, name, "; ".join(answer.problems)))
            continue
        if label in MASS_LABELS and (answer.diagnosis == 0 or not answer.boxes):
            why = "diagnosis 'normal'" if answer.diagnosis == 0 else "no rectangle"
            report.no_mass.append((tid, name, f"expert found no mass ({why}) on a {IMAGE_LABEL_NAMES[label]} image"))
            continue
        if answer.diagnosis is not None and answer.diagnosis != label:
            report.conflicts.append((tid, name, f"diagnosis {IMAGE_LABEL_NAMES[answer.diagnosis]!r} differs from "
                                                f"the image label {IMAGE_LABEL_NAMES[label]!r}"))
            continue
        if label not in MASS_LABELS and answer.boxes:
            report.conflicts.append((tid, name, f"{len(answer.boxes)} rectangle(s) on a normal image"))
            continue
        wrong = [k for k in answer.classes if k != image_label_to_class(label)]
        if wrong:
            report.conflicts.append((tid, name, f"{len(wrong)} rectangle(s) of the other class on a "
                                                f"{IMAGE_LABEL_NAMES[label]} image"))
            continue
        report.strong.append(strong_record(weak, answer, task, annotation))
    return report


def split_paths(strong_json: str, weak_json: str, tag: str, out_dir: Optional[str] = None) -> Dict[str, str]:
    """Where a pull with ``tag`` writes: {"strong", "weak", "report"} beside the given files (or in ``out_dir``)."""
    folder = out_dir or os.path.dirname(os.path.abspath(strong_json))
    stem = lambda path: os.path.splitext(os.path.basename(path))[0]  # noqa: E731
    return {"strong": os.path.join(folder, f"{stem(strong_json)}_{tag}.json"),
            "weak": os.path.join(folder, f"{stem(weak_json)}_{tag}.json"),
            "report": os.path.join(folder, "meta", f"label_studio_{tag}.json")}


def free_tag(strong_json: str, weak_json: str, out_dir: Optional[str] = None, prefix: str = "ls") -> str:
    """The first ``ls<k>`` (k = 1, 2, ...) none of whose files exists yet."""
    k = 1
    while any(os.path.exists(p) for p in split_paths(strong_json, weak_json, f"{prefix}{k}", out_dir).values()):
        k += 1
    return f"{prefix}{k}"


def write_pulled_split(report: PullReport, strong_records: Sequence[Dict[str, Any]],
                       weak_records: Sequence[Dict[str, Any]], paths: Dict[str, str]) -> Dict[str, str]:
    """Write the new split: the old strong images + the expert's, the weak images less those, and the pull's
    report (JSON). Existing files are refused before anything is written. Returns ``paths``."""
    existing = [p for p in paths.values() if os.path.exists(p)]
    if existing:
        raise FileExistsError(f"{', '.join(existing)} exist(s); a pull never overwrites: choose another --tag")
    moved = {os.path.abspath(r["file_name"]) for r in report.strong}
    strong = list(strong_records) + list(report.strong)
    weak = [r for r in weak_records if os.path.abspath(r["file_name"]) not in moved]
    if not weak:
        raise ValueError("every weak image was annotated: nothing would be left for the weak file "
                         f"{paths['weak']}; train on {paths['strong']} alone")
    os.makedirs(os.path.dirname(paths["report"]), exist_ok=True)
    write_records(paths["strong"], strong, f"strong images + {len(report.strong)} annotated in Label Studio",
                  overwrite=False)
    write_records(paths["weak"], weak, f"weak images less {len(report.strong)} annotated in Label Studio",
                  overwrite=False)
    atomic_write_json(paths["report"], {**report.summary(), "files": {k: v for k, v in paths.items()}}, indent=1)
    return paths

