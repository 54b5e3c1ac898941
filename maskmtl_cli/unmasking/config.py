"""The configs of `maskmtl train-unmask`, `maskmtl unmask` and the reconstruction evaluation."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from maskmtl_cli.errors import InputError

#: The unmasking model shipped with the package (trained by `maskmtl train-unmask`; see README).
DEFAULT_UNMASK_MODEL = (Path(__file__).resolve().parents[1] / "assets" / "models"
                        / "unmask_default.onnx")
#: Metadata key of an unmasking model's ONNX file (JSON: kind, image size).
UNMASK_METADATA_KEY = "maskmtl_unmask"
#: Files of an unmasking run folder.
UNMASK_KERAS, UNMASK_ONNX, UNMASK_LAST = "unmask.keras", "unmask.onnx", "last.weights.h5"


@dataclass(frozen=True)
class UnmaskTrainConfig:
    """`maskmtl train-unmask`: one training run of the unmasking network.

    Attributes:
        manifest: Manifest CSV of a ``maskmtl mask --save-masks`` output (split column used).
        project: Folder of run folders.
        name: Run name (None: ``unmask``, ``unmask2``, ...).
        image_size: Side of the aligned crops the network works on (divisible by 8).
        width: Multiplier of the inpainter's filters.
        epochs: Passes over the train split (one masked version per face per pass).
        batch_size: Faces per step.
        learning_rate: Adam's starting rate (cosine decay to 5% of it).
        hole_weight: Weight of the L1 loss on hidden pixels relative to visible ones.
        max_growth: The mask is grown by 0..max_growth pixels at random before inpainting,
            as the segmenter's estimate is at prediction time.
        bare_share: Share of training faces shown bare, with an empty mask to find (so that
            a face without a mask is left alone).
        perceptual_weight: Weight of the perceptual loss: the distance between the shipped
            attribute model's encoder features of the reconstruction and of the bare face
            (0: none).
        seed: Seed of the weights, the order of the faces and the augmentation.
        limit: Only the first N training faces (tests, quick trials).
    """

    manifest: Path
    project: Path = Path("runs")
    name: str | None = None
    image_size: int = 64
    width: float = 1.0
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 2e-3
    hole_weight: float = 6.0
    max_growth: int = 2
    bare_share: float = 0.15
    perceptual_weight: float = 1.0
    seed: int = 0
    limit: int | None = None

    def __post_init__(self):
        if not 0.0 <= self.bare_share < 1.0:
            raise InputError(f"--bare-share must be in [0, 1); got {self.bare_share}.")
        if self.perceptual_weight < 0:
            raise InputError(f"--perceptual-weight must be >= 0; got {self.perceptual_weight}.")
        if self.image_size % 8 or self.image_size < 16:
            raise InputError(f"--image-size must be a multiple of 8 and at least 16 (the "
                             f"networks halve it three times); got {self.image_size}.")
        if self.width <= 0:
            raise InputError(f"--width must be positive; got {self.width}.")

    def to_dict(self) -> dict:
        """JSON-ready settings (paths as text), as saved in the run's ``config.json``."""
        return {key: str(value) if isinstance(value, Path) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def load(cls, path: Path) -> UnmaskTrainConfig:
        """Read a run's ``config.json``; InputError naming the file if it is unusable."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            known = {field.name for field in dataclasses.fields(cls)}
            data = {key: value for key, value in data.items() if key in known}
            for key in ("manifest", "project"):
                data[key] = Path(data[key])
            return cls(**data)
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise InputError(f"Cannot read the run config '{path}': {error}. The run folder may "
                             "be damaged; start a new run instead of resuming it.") from None


@dataclass(frozen=True)
class UnmaskConfig:
    """`maskmtl unmask`: reconstruct the faces under the masks of photos.

    Attributes:
        inputs: Photo files and folders (searched recursively).
        out_dir: Folder for one output image per input (same relative names).
        model: Unmasking model (.onnx or run folder); None: the shipped one.
        detector: Face detector, as in `maskmtl predict`.
        min_face: Smallest face to find, in pixels.
        faces: "all" or "largest".
        aligned: The photos are aligned face crops (no detection).
        side_by_side: Write the photo and its reconstruction side by side.
        crops: Also write each face's aligned crop, mask and reconstruction under ``_crops/``.
        overwrite: Redo photos whose output exists (default: skip them, so a rerun resumes).
    """

    inputs: tuple[Path, ...]
    out_dir: Path
    model: Path | None = None
    detector: str = "retinaface"
    min_face: int = 20
    faces: str = "all"
    aligned: bool = False
    side_by_side: bool = False
    crops: bool = False
    overwrite: bool = False


@dataclass(frozen=True)
class ReconstructionEvalConfig:
    """`maskmtl eval --reconstruction`: score an unmasking model against the bare faces.

    Attributes:
        manifest: Manifest CSV of a ``maskmtl mask --save-masks`` output.
        split: The split to score ("test", "val", "train" or "all").
        unmask_model: Unmasking model (.onnx or run folder); None: the shipped one.
        attribute_model: Attribute model for the bare / masked / reconstructed table (a run
            folder, .keras or .onnx); None: the shipped one.
        out_dir: Folder for reconstruction.json, .csv, .md and the picture grid.
        grid: Faces in the picture grid (0: none).
        limit: Only the first N faces of the split.
        seed: Seed of the faces shown in the grid.
        engine: How the attribute model runs ("onnx" or "keras").
        cache_dir: Image cache, as for `maskmtl eval`.
    """

    manifest: Path
    split: str = "test"
    unmask_model: Path | None = None
    attribute_model: Path | None = None
    out_dir: Path = Path("reconstruction_eval")
    grid: int = 12
    limit: int | None = None
    seed: int = 0
    engine: str = "onnx"
    cache_dir: Path | str | None = "default"
