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
PNET_THRESHOLD, RNET_THRESHOLD, ONET_THRESHOLD = 0.6, 0.7, 0.8
PNET_NMS_PER_SCALE, PNET_NMS, RNET_NMS, ONET_NMS = 0.5, 0.7, 0.7, 0.7


@dataclass(frozen=True)
class Detection:
    """One face, in the pixels of the image given to the detector."""

    box: tuple[float, float, float, float]  # x, y, width, height
    confidence: float
    landmarks: np.ndarray  # 5 x 2, in ml.alignment.LANDMARK_NAMES order (ONet's own)


class FaceDetector:
    """Loads the MTCNN networks once; ``detect`` and ``detect_batch`` return faces sorted by confidence."""

    def __init__(
        self,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        device: str | None = None,
        max_short_side: int = MAX_SHORT_SIDE,
    ):
        import tensorflow as tf  # imported here so that `import ml` stays light
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        if device is None:
            device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
        self._on_device = partial(tf.device, device)
        self.min_confidence = min_confidence
        self.max_short_side = max_short_side
        with self._on_device():
            self._pnet = _compile(tf, StagePNet().model, (None, None, 3))
            self._rnet = _compile(tf, StageRNet().model, (24, 24, 3))
            self._onet = _compile(tf, StageONet().model, (48, 48, 3))
        self._crop_and_resize = tf.image.crop_and_resize

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        return self.detect_batch([image_rgb])[0]

    def detect_batch(self, images_rgb: list[np.ndarray]) -> list[list[Detection]]:
        """Detect faces in several images; images of one size share each pass through the networks."""
        by_shape: dict[tuple, list[int]] = {}
        for index, image in enumerate(images_rgb):
            by_shape.setdefault(np.shape(image), []).append(index)
        results: list[list[Detection]] = [[] for _ in images_rgb]
        with self._on_device():
            for indices in by_shape.values():
                for i, faces in zip(indices, self._detect_same_size([images_rgb[i] for i in indices]), strict=True):
                    results[i] = faces
        return results

    def _detect_same_size(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Shrink per the size policy, run the three stages on the batch, map back to the caller's pixels."""
        height, width = images[0].shape[:2]
        scale = min(1.0, self.max_short_side / min(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if scale < 1.0:
            images = [cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in images]
        normalized = _normalize(np.stack(images))
        rows = self._onet_stage(normalized, self._rnet_stage(normalized, self._pnet_stage(normalized)))
        # Back to the original pixels (the shrink may round each axis a little differently).
        rows[:, [1, 3, *range(6, 11)]] *= width / size[0]
        rows[:, [2, 4, *range(11, 16)]] *= height / size[1]
        rows[:, [1, 3]] = rows[:, [1, 3]].clip(0, width - 1)
        rows[:, [2, 4]] = rows[:, [2, 4]].clip(0, height - 1)
        return [self._detections(rows[rows[:, 0] == i]) for i in range(len(images))]

    def _pnet_stage(self, normalized: np.ndarray) -> np.ndarray:
        """Candidate boxes from PNet over an image pyramid: rows of (image, x1, y1, x2, y2, score).

        Each level is shrunk from the full image (shrinking the previous level instead is
        cheaper but blurs differently and moved landmarks by 1.6 px on average).
        """
        candidates = []
        for scale in _pyramid_scales(*normalized.shape[1:3]):
            size = (int(normalized.shape[2] * scale), int(normalized.shape[1] * scale))
            level = np.stack([cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in normalized])
            offsets, scores = (t.numpy() for t in self._pnet(level))
            boxes = _pnet_boxes(offsets, scores[..., 1], scale)
            candidates.append(_nms(boxes, PNET_NMS_PER_SCALE, "union"))
        if not candidates:  # under 20 px: no face fits
            return np.empty((0, 6))
        return _square(_nms(np.concatenate(candidates), PNET_NMS, "union"))

    def _rnet_stage(self, normalized: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """RNet re-scores and refines the candidates on 24 x 24 crops."""
        if len(boxes) == 0:
            return boxes
        offsets, scores = (t.numpy() for t in self._rnet(self._patches(normalized, boxes, 24)))
        boxes = _refine(boxes, offsets, scores[:, 1])
        keep = boxes[:, 5] > RNET_THRESHOLD
        return _square(_nms(boxes[keep], RNET_NMS, "union"))

    def _onet_stage(self, normalized: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """ONet's final boxes and landmarks on 48 x 48 crops: rows of (image, box, score, 5 x and 5 y)."""
        if len(boxes) == 0:
            return np.empty((0, 16))
        offsets, landmarks, scores = (t.numpy() for t in self._onet(self._patches(normalized, boxes, 48)))
        widths = boxes[:, 3:4] - boxes[:, 1:2] + 1
        heights = boxes[:, 4:5] - boxes[:, 2:3] + 1
        xs = widths * landmarks[:, :5] + boxes[:, 1:2] - 1
        ys = heights * landmarks[:, 5:] + boxes[:, 2:3] - 1
        rows = np.concatenate([_refine(boxes, offsets, scores[:, 1]), xs, ys], axis=1)
        return _nms(rows[rows[:, 5] > ONET_THRESHOLD], ONET_NMS, "min")

    def _patches(self, normalized: np.ndarray, boxes: np.ndarray, size: int):
        """Bilinear ``size`` x ``size`` crops of the boxes, outside the image grey: cut as mtcnn 1.0.0 cuts them."""
        height, width = normalized.shape[1:3]
        corners = boxes[:, [2, 1, 4, 3]] / [height, width, height, width]
        return self._crop_and_resize(normalized, corners, boxes[:, 0].astype(np.int32), (size, size))

    def _detections(self, rows: np.ndarray) -> list[Detection]:
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
            if row[5] >= self.min_confidence
        ]
        return sorted(detections, key=lambda d: d.confidence, reverse=True)


def _compile(tf, model, input_shape: tuple[int | None, ...]):
    """A network as one graph for any batch (and, for PNet, image) size: traced once, then
    called as a concrete function, which skips ``tf.function``'s per-call argument matching
    (about 0.5 ms a call, a dozen calls a photo)."""
    signature = [tf.TensorSpec((None, *input_shape), tf.float32)]
    return tf.function(lambda x: model(x, training=False), input_signature=signature).get_concrete_function()


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


def _pnet_boxes(offsets: np.ndarray, scores: np.ndarray, scale: float) -> np.ndarray:
    """PNet's windows above threshold, regressed and mapped back to the unscaled image."""
    image, row, col = np.nonzero(scores > PNET_THRESHOLD)
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
