"""MTCNN face detection, fast enough for a 640 px photo on two CPU cores.

We use mtcnn 1.0.0's three trained networks (PNet, RNet, ONet) and reproduce its
pipeline (pyramid, box regression, the library's own NMS, thresholds) step for step: on
photos that need no shrinking (below), boxes and landmarks are the library's to the pixel.
But we drive the networks ourselves, because the library's driver was slow and fragile:

* It ran the Keras networks eagerly, layer by layer, once per pyramid scale (PNet alone
  took 446 of 577 ms on a 640 px photo). Here each network is one graph, traced once with
  open shapes (a new photo size never retraces) and called as a concrete function.
* It built the pyramid in float64 TensorFlow ops; here OpenCV shrinks float32 levels.
* ``min_face_size`` above ~23 px gave PNet inputs under its 12 px minimum, and the
  resulting ``InvalidArgumentError`` made it return no faces at all (for a whole batch).
  The pyramid here stops at 12 px, so no input can make a stage fail.

On a CPU the three networks then run on TensorFlow Lite with XNNPACK (:mod:`ml.tflite`,
converted in memory when the detector loads: 2.3-2.6 s instead of 0.5, but the first photo
then takes 60 ms instead of 230; the process holds 90 MB more after loading, 70-130 MB
more after photos of one to four sizes, PNet keeping :data:`PNET_PLANNED_SHAPES`
interpreters planned). TensorFlow's graphs spent most of each call around the kernels: for
a 640 px photo PNet's nine calls took 21 ms there and 6 ms in TFLite, RNet 6.4 ms and 3
ms. ``detect_and_extract`` on a 640 x 640 photo went from 54.6 to 26.0 ms (median; CPU 63
to 34 ms), on 640 x 427 from 58.4 to 26.7 ms (``bench/detection_speed.py``, both paths in
turn, load ~1.5), with the same faces: on 500 UTKFace chips and four photos no box or
landmark moved by a pixel (tests/ml/test_detection.py holds them within one). Feeding PNet
the pyramid as one batch padded to the largest level instead was slower (39 against 11 ms:
over four times the pixels). ``runtime="keras"`` (the default on a GPU) keeps the graphs.

Size policy: a photo whose short side is over ``max_short_side`` px (by default
:data:`MAX_SHORT_SIDE`, 400) is shrunk to that before detection, and boxes and landmarks
are mapped back to the original pixels. The smallest face found is therefore
``max(20, short_side * 20 / max_short_side)`` px in the original (by default 32 px on a
640 px photo, 36 px on 1280 x 720, 150 px on a 4000 x 3000 phone photo). Smaller faces
hold too few pixels for age and gender anyway, and without the cap the work grows with
the square of the photo's size; a larger ``max_short_side`` finds smaller faces (a crowd)
at that cost.

Callers pass RGB arrays from :func:`ml.images.load_rgb`. Boxes below 0.9 confidence are
mostly false positives (playing cards, patterns), hence the default ``min_confidence``.

Retry: a photo in which this first pass finds no face is searched once more (``DEFAULT_RETRIES``,
:class:`Retry`): with a border in its mean colour (a face that fills the photo, its box reaching
past the edges, is what MTCNN misses most: babies' close-ups), contrast-equalised (faded, grey
scans) and lower thresholds; a face found so is kept only if its five landmarks are laid out like
a face (:func:`plausible_face`) and its box is at least 0.3 of the photo's short side (textures
give small "faces" at low thresholds). Photos with a face are untouched and cost no more; faces
found by the retry say so in ``Detection.retry``. Counts: ``bench/detection_recall.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

DEFAULT_MIN_CONFIDENCE = 0.9
MIN_FACE_SIZE = 20  # px, in the image the networks see
MAX_SHORT_SIDE = 20 * MIN_FACE_SIZE  # the default: the smallest face promised is short_side / 20

# mtcnn 1.0.0's defaults: PNet sees 12 px windows with stride 2 over a pyramid whose
# levels shrink by SCALE_FACTOR; each network drops boxes at or below its threshold,
# then overlapping boxes are suppressed.
PNET_WINDOW, PNET_STRIDE, SCALE_FACTOR = 12, 2, 0.709
PNET_NMS_PER_SCALE, PNET_NMS, RNET_NMS, ONET_NMS = 0.5, 0.7, 0.7, 0.7
PNET_PLANNED_SHAPES = 20  # PNet's TFLite interpreters, one per input shape: two photo sizes' pyramids


@dataclass(frozen=True)
class Thresholds:
    """Each network drops the boxes it scores at or below its threshold (mtcnn 1.0.0's: 0.6, 0.7, 0.8)."""

    pnet: float = 0.6
    rnet: float = 0.7
    onet: float = 0.8


MTCNN_THRESHOLDS = Thresholds()

GREY_CHROMA = 4.0  # mean |a|, |b| in OpenCV's Lab (0-255, neutral 128) below which a photo counts as grey
# The bounds plausible_face accepts, in eye distances and degrees: the 0.1-99.9 percentiles of the
# first pass's faces on the three val splits (3,546 faces), widened by about a tenth of their range.
GEOMETRY = {
    "max_roll_deg": 35.0,
    "eye_distance_to_box": (0.33, 0.6),
    "eyes_to_nose": (0.2, 0.95),
    "nose_to_mouth": (0.1, 0.95),
    "mouth_width": (0.55, 1.3),
    "max_nose_offset": 0.5,
    "max_mouth_offset": 0.3,
    "max_outside_box": 0.05,
}


@dataclass(frozen=True)
class Retry:
    """One more look at a photo in which the first pass found no face.

    The photo is changed (a border added, contrast equalised, a small photo enlarged) and
    searched again, maybe with lower thresholds; what is found is mapped back to the
    photo's pixels and, with ``check_geometry``, kept only when its five landmarks are
    laid out like a face's (:func:`plausible_face`).
    """

    name: str
    pad: float = 0.0  # border on each side, as a share of the photo's longer side, in its mean colour
    equalize: bool = False  # CLAHE on the lightness, the photo made grey first if it nearly is
    upscale_to: int = 0  # enlarge a photo whose short side is smaller than this to that
    thresholds: Thresholds = MTCNN_THRESHOLDS
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    check_geometry: bool = True
    min_face_share: float = 0.0  # keep faces whose box side is at least this share of the photo's short side


# Tuned on the val splits (bench/detection_recall.py, docs/detection.md): this one retry found 52 of
# the 54 faces the first pass missed there (all of them over 0.45 of the short side), and one "face"
# in about 2,450 non-face images (textures, crops of photos, noise; the first pass finds three there),
# where without the 0.3 share it found 34-39 per 1,226. Padding helps faces that fill the photo (their
# box reaches past its edge), CLAHE faded, grey and low-contrast scans. Three retries at the first
# pass's thresholds (CLAHE; 30% border; both) found 53, but cost three passes on a photo without a face.
LOWERED = Retry(
    "lowered",
    pad=0.2,
    equalize=True,
    thresholds=Thresholds(0.5, 0.6, 0.7),
    min_confidence=0.7,
    check_geometry=True,
    min_face_share=0.3,
)
DEFAULT_RETRIES: tuple[Retry, ...] = (LOWERED,)


@dataclass(frozen=True)
class Detection:
    """One face, in the pixels of the image given to the detector."""

    box: tuple[float, float, float, float]  # x, y, width, height
    confidence: float
    landmarks: np.ndarray  # 5 x 2, in ml.alignment.LANDMARK_NAMES order (ONet's own)
    retry: str | None = None  # the Retry that found it; None: the first pass


class FaceDetector:
    """Loads the MTCNN networks once; ``detect`` and ``detect_batch`` return faces sorted by confidence."""

    def __init__(
        self,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        device: str | None = None,
        max_short_side: int = MAX_SHORT_SIDE,
        retries: tuple[Retry, ...] | None = None,
        runtime: str | None = None,
    ):
        """``runtime``: "tflite" (the default on a CPU) or "keras" (TensorFlow's graphs: on a GPU, and
        the reference the TFLite path is tested against)."""
        import tensorflow as tf  # imported here so that `import ml` stays light
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        if device is None:
            device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
        self.runtime = runtime or ("keras" if "GPU" in device.upper() else "tflite")
        if self.runtime not in ("tflite", "keras"):
            raise ValueError(f"runtime must be 'tflite' or 'keras', not {runtime!r}")
        self._on_device = partial(tf.device, device)
        self.min_confidence = min_confidence
        self.max_short_side = max_short_side
        self.retries = DEFAULT_RETRIES if retries is None else tuple(retries)
        with self._on_device():
            if self.runtime == "tflite":
                from ml.tflite import LiteNetwork

                # PNet sees nine or ten input sizes per photo size (its pyramid); RNet and ONet one
                # interpreter each, planned again when the number of candidates changes (~0.1 ms).
                self._pnet = LiteNetwork(StagePNet().model, (None, None, 3), max_shapes=PNET_PLANNED_SHAPES)
                self._rnet = LiteNetwork(StageRNet().model, (24, 24, 3))
                self._onet = LiteNetwork(StageONet().model, (48, 48, 3))
            else:
                self._pnet = _compile(tf, StagePNet().model, (None, None, 3))
                self._rnet = _compile(tf, StageRNet().model, (24, 24, 3))
                self._onet = _compile(tf, StageONet().model, (48, 48, 3))
        self._crop_and_resize = tf.image.crop_and_resize

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        return self.detect_batch([image_rgb])[0]

    def detect_batch(self, images_rgb: list[np.ndarray]) -> list[list[Detection]]:
        """Detect faces in several images; images of one size share each pass through the networks.

        Images in which the first pass finds no face are looked at again, by each of
        ``self.retries`` in turn until one finds a face (see :class:`Retry`).
        """
        results = self._detect(images_rgb, MTCNN_THRESHOLDS, self.min_confidence)
        missing = [i for i, faces in enumerate(results) if not faces and min(np.shape(images_rgb[i])[:2]) > 1]
        for retry in self.retries:
            if not missing:
                break
            for i, faces in zip(missing, self._retry(retry, [images_rgb[i] for i in missing]), strict=True):
                results[i] = faces
            missing = [i for i in missing if not results[i]]
        return results

    def _detect(
        self, images_rgb: list[np.ndarray], thresholds: Thresholds, min_confidence: float
    ) -> list[list[Detection]]:
        by_shape: dict[tuple, list[int]] = {}
        for index, image in enumerate(images_rgb):
            by_shape.setdefault(np.shape(image), []).append(index)
        results: list[list[Detection]] = [[] for _ in images_rgb]
        with self._on_device():
            for indices in by_shape.values():
                found = self._detect_same_size([images_rgb[i] for i in indices], thresholds, min_confidence)
                for i, faces in zip(indices, found, strict=True):
                    results[i] = faces
        return results

    def _retry(self, retry: Retry, images_rgb: list[np.ndarray]) -> list[list[Detection]]:
        """One retry on images without a face: transform, detect, map back to the caller's pixels, check."""
        prepared = [_prepare(image, retry) for image in images_rgb]
        found = self._detect([image for image, _, _ in prepared], retry.thresholds, retry.min_confidence)
        results = []
        for original, (_, scale, offset), faces in zip(images_rgb, prepared, found, strict=True):
            height, width = original.shape[:2]
            mapped = [_map_back(face, scale, offset, width, height, retry.name) for face in faces]
            smallest = retry.min_face_share * min(height, width)
            results.append(
                [
                    face
                    for face in mapped
                    if max(face.box[2:]) >= smallest and (not retry.check_geometry or plausible_face(face))
                ]
            )
        return results

    def _detect_same_size(
        self, images: list[np.ndarray], thresholds: Thresholds, min_confidence: float
    ) -> list[list[Detection]]:
        """Shrink per the size policy, run the three stages on the batch, map back to the caller's pixels."""
        height, width = images[0].shape[:2]
        scale = min(1.0, self.max_short_side / min(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if scale < 1.0:
            images = [cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in images]
        normalized = _normalize(np.stack(images))
        rows = self._pnet_stage(normalized, thresholds.pnet)
        rows = self._onet_stage(normalized, self._rnet_stage(normalized, rows, thresholds.rnet), thresholds.onet)
        # Back to the original pixels (the shrink may round each axis a little differently).
        rows[:, [1, 3, *range(6, 11)]] *= width / size[0]
        rows[:, [2, 4, *range(11, 16)]] *= height / size[1]
        rows[:, [1, 3]] = rows[:, [1, 3]].clip(0, width - 1)
        rows[:, [2, 4]] = rows[:, [2, 4]].clip(0, height - 1)
        return [_detections(rows[rows[:, 0] == i], min_confidence) for i in range(len(images))]

    def _pnet_stage(self, normalized: np.ndarray, threshold: float) -> np.ndarray:
        """Candidate boxes from PNet over an image pyramid: rows of (image, x1, y1, x2, y2, score).

        Each level is shrunk from the full image (shrinking the previous level instead is
        cheaper but blurs differently and moved landmarks by 1.6 px on average).
        """
        candidates = []
        for scale in _pyramid_scales(*normalized.shape[1:3]):
            size = (int(normalized.shape[2] * scale), int(normalized.shape[1] * scale))
            level = np.stack([cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in normalized])
            offsets, scores = self._pnet(level)
            boxes = _pnet_boxes(offsets, scores[..., 1], scale, threshold)
            candidates.append(_nms(boxes, PNET_NMS_PER_SCALE, "union"))
        if not candidates:  # under 20 px: no face fits
            return np.empty((0, 6))
        return _square(_nms(np.concatenate(candidates), PNET_NMS, "union"))

    def _rnet_stage(self, normalized: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
        """RNet re-scores and refines the candidates on 24 x 24 crops."""
        if len(boxes) == 0:
            return boxes
        offsets, scores = self._rnet(self._patches(normalized, boxes, 24))
        boxes = _refine(boxes, offsets, scores[:, 1])
        keep = boxes[:, 5] > threshold
        return _square(_nms(boxes[keep], RNET_NMS, "union"))

    def _onet_stage(self, normalized: np.ndarray, boxes: np.ndarray, threshold: float) -> np.ndarray:
        """ONet's final boxes and landmarks on 48 x 48 crops: rows of (image, box, score, 5 x and 5 y)."""
        if len(boxes) == 0:
            return np.empty((0, 16))
        offsets, landmarks, scores = self._onet(self._patches(normalized, boxes, 48))
        widths = boxes[:, 3:4] - boxes[:, 1:2] + 1
        heights = boxes[:, 4:5] - boxes[:, 2:3] + 1
        xs = widths * landmarks[:, :5] + boxes[:, 1:2] - 1
        ys = heights * landmarks[:, 5:] + boxes[:, 2:3] - 1
        rows = np.concatenate([_refine(boxes, offsets, scores[:, 1]), xs, ys], axis=1)
        return _nms(rows[rows[:, 5] > threshold], ONET_NMS, "min")

    def _patches(self, normalized: np.ndarray, boxes: np.ndarray, size: int):
        """Bilinear ``size`` x ``size`` crops of the boxes, outside the image grey: cut as mtcnn 1.0.0 cuts them."""
        height, width = normalized.shape[1:3]
        corners = boxes[:, [2, 1, 4, 3]] / [height, width, height, width]
        return self._crop_and_resize(normalized, corners, boxes[:, 0].astype(np.int32), (size, size))


def plausible_face(detection: Detection) -> bool:
    """Whether the five landmarks are laid out like a face's in its box (see :func:`face_geometry`)."""
    g = face_geometry(detection.landmarks, detection.box)
    return (
        abs(g["roll_deg"]) <= GEOMETRY["max_roll_deg"]
        and GEOMETRY["eye_distance_to_box"][0] <= g["eye_distance_to_box"] <= GEOMETRY["eye_distance_to_box"][1]
        and GEOMETRY["eyes_to_nose"][0] <= g["eyes_to_nose"] <= GEOMETRY["eyes_to_nose"][1]
        and GEOMETRY["nose_to_mouth"][0] <= g["nose_to_mouth"] <= GEOMETRY["nose_to_mouth"][1]
        and GEOMETRY["mouth_width"][0] <= g["mouth_width"] <= GEOMETRY["mouth_width"][1]
        and abs(g["nose_offset"]) <= GEOMETRY["max_nose_offset"]
        and abs(g["mouth_offset"]) <= GEOMETRY["max_mouth_offset"]
        and g["outside_box"] <= GEOMETRY["max_outside_box"]
    )


def face_geometry(landmarks: np.ndarray, box: tuple[float, float, float, float]) -> dict[str, float]:
    """The layout of five landmarks, in a frame turned so that the eyes are level, in eye distances.

    ``roll_deg``: the eye line's angle (a right eye left of the left one is 180);
    ``eyes_to_nose`` and ``nose_to_mouth``: how far down the nose lies below the eyes and the
    mouth below the nose; ``mouth_width``: the mouth corners' distance; ``nose_offset`` and
    ``mouth_offset``: sideways from the eyes' midpoint (a turned head moves the nose);
    ``eye_distance_to_box``: eye distance over the box's width; ``outside_box``: how far the
    farthest landmark lies outside the box.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    dx, dy = right_eye - left_eye
    distance = max(float(np.hypot(dx, dy)), 1e-6)
    cos, sin = dx / distance, dy / distance
    centre = (left_eye + right_eye) / 2
    # x along the eye line, y down across it, both in eye distances from the eyes' midpoint
    local = (points - centre) @ np.array([[cos, -sin], [sin, cos]]) / distance
    mouth = (local[3] + local[4]) / 2
    x, y, w, h = box
    outside = np.maximum.reduce([x - points[:, 0], points[:, 0] - (x + w), y - points[:, 1], points[:, 1] - (y + h)])
    return {
        "roll_deg": float(np.degrees(np.arctan2(dy, dx))),
        "eyes_to_nose": float(local[2, 1]),
        "nose_to_mouth": float(mouth[1] - local[2, 1]),
        "mouth_width": float(local[4, 0] - local[3, 0]),
        "nose_offset": float(local[2, 0]),
        "mouth_offset": float(mouth[0]),
        "eye_distance_to_box": distance / max(w, 1e-6),
        "outside_box": float(max(0.0, outside.max()) / distance),
    }


def _prepare(image: np.ndarray, retry: Retry) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The image a retry searches, with the scale and (x, y) offset that map the photo's pixels into it."""
    image = np.asarray(image)
    scale = 1.0
    if retry.equalize:
        image = _equalize(image)
    short = min(image.shape[:2])
    if retry.upscale_to and short < retry.upscale_to:
        scale = retry.upscale_to / short
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    border = round(retry.pad * max(image.shape[:2]))
    if border:
        colour = [float(c) for c in image.reshape(-1, 3).mean(axis=0)]
        image = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=colour)
    return image, scale, (border, border)


def _equalize(image: np.ndarray) -> np.ndarray:
    """Contrast-limited histogram equalisation of the lightness; a nearly grey photo becomes grey first."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    if np.abs(lab[..., 1:].astype(np.int16) - 128).mean() < GREY_CHROMA:
        lab[..., 1:] = 128
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def _map_back(face: Detection, scale: float, offset: tuple[int, int], width: int, height: int, name: str) -> Detection:
    """A face found in a prepared image, in the original photo's pixels (box clipped to the photo)."""
    shift = np.array(offset, dtype=np.float64)
    x, y, w, h = face.box
    x1, y1 = (np.array([x, y]) - shift) / scale
    x2, y2 = (np.array([x + w, y + h]) - shift) / scale
    x1, x2 = np.clip([x1, x2], 0, width - 1)
    y1, y2 = np.clip([y1, y2], 0, height - 1)
    box = tuple(float(v) for v in np.round([x1, y1, x2 - x1, y2 - y1]))
    return Detection(box, face.confidence, np.round((face.landmarks - shift) / scale), retry=name)


def _detections(rows: np.ndarray, min_confidence: float) -> list[Detection]:
    """Rows to Detections, rounded to whole pixels as mtcnn 1.0.0 rounds them.

    Rounding also keeps a photo's faces identical alone and in a batch, where the
    networks' float sums come out a few ulps apart.
    """
    detections = [
        Detection(
            box=tuple(float(v) for v in np.round([row[1], row[2], row[3] - row[1], row[4] - row[2]])),
            confidence=float(row[5]),
            landmarks=np.round(np.stack([row[6:11], row[11:16]], axis=1)),
        )
        for row in rows
        if row[5] >= min_confidence
    ]
    return sorted(detections, key=lambda d: d.confidence, reverse=True)


def _compile(tf, model, input_shape: tuple[int | None, ...]):
    """A network as one TensorFlow graph for any batch (and, for PNet, image) size, returning its
    outputs as arrays: traced once, then called as a concrete function, which skips ``tf.function``'s
    per-call argument matching (about 0.5 ms a call, a dozen calls a photo)."""
    signature = [tf.TensorSpec((None, *input_shape), tf.float32)]
    graph = tf.function(lambda x: model(x, training=False), input_signature=signature).get_concrete_function()
    return lambda batch: [output.numpy() for output in graph(batch)]


def _normalize(images: np.ndarray) -> np.ndarray:
    """RGB 0-255 to the [-1, 1) range the networks were trained on."""
    return (images.astype(np.float32) - np.float32(127.5)) * np.float32(1 / 128)


def _pyramid_scales(height: int, width: int) -> list[float]:
    """Scales mapping a MIN_FACE_SIZE face to PNet's 12 px window, down to a 12 px image."""
    scales = []
    scale = PNET_WINDOW / MIN_FACE_SIZE
    while min(height, width) * scale >= PNET_WINDOW:
        scales.append(scale)
        scale *= SCALE_FACTOR
    return scales


def _pnet_boxes(offsets: np.ndarray, scores: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """PNet's windows above threshold, regressed and mapped back to the unscaled image."""
    image, row, col = np.nonzero(scores > threshold)
    x1, y1 = col * PNET_STRIDE + 1, row * PNET_STRIDE + 1
    size = PNET_WINDOW - 1
    shift = offsets[image, row, col] * size
    boxes = np.stack([x1 + shift[:, 0], y1 + shift[:, 1], x1 + size + shift[:, 2], y1 + size + shift[:, 3]], axis=1)
    rows = np.column_stack([image, boxes / scale, scores[image, row, col]])
    return rows[np.argsort(-rows[:, 5], kind="stable")]


def _refine(boxes: np.ndarray, offsets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Apply a network's box regression (in box sizes) and replace the scores."""
    boxes = boxes.copy()
    widths = boxes[:, 3] - boxes[:, 1] + 1
    heights = boxes[:, 4] - boxes[:, 2] + 1
    boxes[:, 1:5] += offsets * np.stack([widths, heights, widths, heights], axis=1)
    boxes[:, 5] = scores
    return boxes


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (the next network wants square crops)."""
    boxes = boxes.copy()
    widths, heights = boxes[:, 3] - boxes[:, 1], boxes[:, 4] - boxes[:, 2]
    sides = np.maximum(widths, heights)
    boxes[:, 1] += (widths - sides) / 2
    boxes[:, 2] += (heights - sides) / 2
    boxes[:, 3] = boxes[:, 1] + sides
    boxes[:, 4] = boxes[:, 2] + sides
    return boxes


def _nms(rows: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """mtcnn 1.0.0's suppression: drop a box if any higher-scoring box of its image overlaps it.

    Unlike greedy NMS, a box that was itself dropped still suppresses; we keep that so the
    results match the library's. Overlap is IoU ("union") or intersection over the smaller
    box ("min"). Rows come back by image, then by descending score.
    """
    rows = rows[np.lexsort((-rows[:, 5], rows[:, 0]))]
    kept = []
    for image in np.unique(rows[:, 0]):
        boxes = rows[rows[:, 0] == image]
        x1, y1, x2, y2 = boxes[:, 1:5].T
        areas = (x2 - x1) * (y2 - y1)
        overlap_w = np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1)
        overlap_h = np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1)
        inter = overlap_w.clip(0) * overlap_h.clip(0)
        with np.errstate(divide="ignore", invalid="ignore"):  # degenerate boxes: NaN never suppresses
            if method == "union":
                overlap = inter / (areas[:, None] + areas - inter)
            else:
                overlap = inter / np.minimum(areas[:, None], areas)
        suppressed = np.triu(overlap > threshold, k=1).any(axis=0)
        kept.append(boxes[~suppressed])
    return np.concatenate(kept) if kept else rows
