"""Plain data the ml library hands to its callers (no numpy arrays in the public results)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Box:
    """A face box in the pixels of the upright photo."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class AgeEstimate:
    """Age in years: the point estimate and an interval with ``level`` probability mass."""

    value: float
    low: float
    high: float
    level: float


@dataclass(frozen=True)
class GenderEstimate:
    """``label`` is "female" or "male"; ``probability`` is the model's probability of that label."""

    label: str
    probability: float


@dataclass(frozen=True)
class HeadPose:
    """Approximate head rotation in degrees (ml.face_quality): yaw > 0 turned to the photo's right,
    pitch > 0 looking up, roll > 0 tilted clockwise as seen."""

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class FaceQuality:
    """Sharpness and brightness on 0-100 of the face in its aligned crop, and its box's shorter side in pixels."""

    sharpness: float
    brightness: float
    size: int


@dataclass(frozen=True)
class FacePrediction:
    box: Box
    landmarks: dict[str, tuple[float, float]]
    detection_confidence: float
    pose: HeadPose
    quality: FaceQuality
    age: AgeEstimate
    gender: GenderEstimate
    model_version: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ImagePrediction:
    """Every face found in one photo, most confident detection first."""

    width: int
    height: int
    faces: list[FacePrediction] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
