"""``UnmaskModel``: the unmasking network run by ONNX Runtime (no TensorFlow or Keras)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from maskmtl_cli.errors import ModelError
from maskmtl_cli.unmasking.config import DEFAULT_UNMASK_MODEL, UNMASK_METADATA_KEY, UNMASK_ONNX


def resolve_unmask_model(path: str | Path | None) -> Path:
    """The ``.onnx`` file of an unmasking model: a file, a run folder, or None (the shipped one).

    Raises:
        ModelError: Nothing usable there, saying what to pass.
    """
    if path is None:
        if not DEFAULT_UNMASK_MODEL.is_file():
            raise ModelError(f"The shipped unmasking model is missing ({DEFAULT_UNMASK_MODEL}). "
                             "Reinstall maskmtl, or pass --model runs/unmask (a folder from "
                             "`maskmtl train-unmask`).")
        return DEFAULT_UNMASK_MODEL
    path = Path(path)
    if path.is_dir():
        if (path / UNMASK_ONNX).is_file():
            return path / UNMASK_ONNX
        raise ModelError(f"'{path}' has no {UNMASK_ONNX}. Pass a run folder of `maskmtl "
                         "train-unmask` (it exports unmask.onnx when it finishes) or an .onnx "
                         "file.")
    if not path.is_file():
        raise ModelError(f"No unmasking model at '{path}'. Pass a run folder of `maskmtl "
                         "train-unmask` or its unmask.onnx, or leave --model out for the "
                         "shipped one.")
    return path


class UnmaskModel:
    """An unmasking model (``maskmtl train-unmask``'s ONNX export).

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads (None: every core).

    Attributes:
        image_size: Side of the aligned crops it works on.
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        from maskmtl_cli.onnx_model import open_session

        self.path = Path(path)
        self.session = open_session(self.path, threads, "unmasking model",
                                    "train it again with `maskmtl train-unmask` or pass another")
        metadata = self.session.get_modelmeta().custom_metadata_map or {}
        if UNMASK_METADATA_KEY not in metadata:
            raise ModelError(f"'{self.path}' is not an unmasking model (an attribute model? "
                             "those go to predict and eval). Pass a model from `maskmtl "
                             "train-unmask`, or leave --model out for the shipped one.")
        self.image_size = int(json.loads(metadata[UNMASK_METADATA_KEY])["image_size"])
        self._outputs = [output.name for output in self.session.get_outputs()]

    def run(self, images: np.ndarray, masks: np.ndarray | None = None,
            batch_size: int = 64) -> dict[str, np.ndarray]:
        """Unmask aligned crops.

        Args:
            images: (N, S, S, 3) RGB, 0..255 (any numeric dtype).
            masks: (N, S, S, 1): 1 hidden, 0 visible, negative = the model's estimate; None
                estimates every mask.
            batch_size: Faces per ONNX Runtime call.

        Returns:
            ``used_mask`` (N, S, S, 1) float 0/1, ``mask_probability`` (N, S, S, 1) and ``face``
            (N, S, S, 3) float 0..255.
        """
        images = np.asarray(images, dtype=np.float32)
        if masks is None:
            masks = np.full((*images.shape[:3], 1), -1.0, dtype=np.float32)
        masks = np.asarray(masks, dtype=np.float32)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self._outputs}
        for start in range(0, len(images), batch_size):
            got = self.session.run(None, {"image": images[start:start + batch_size],
                                          "mask": masks[start:start + batch_size]})
            for name, value in zip(self._outputs, got):
                parts[name].append(value)
        return {name: np.concatenate(values) if values else
                np.zeros((0, *images.shape[1:3], 3 if name == "face" else 1), np.float32)
                for name, values in parts.items()}
