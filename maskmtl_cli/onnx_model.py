"""``OnnxModel``: a maskmtl model run by ONNX Runtime, without TensorFlow or Keras.

Used by ``inference.load_model`` (``--engine onnx``) and by ``models.export`` to check an export
against its Keras network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskmtl_cli.errors import ModelError
from maskmtl_cli.model_schema import specs_from_metadata, specs_from_outputs


def session_options(threads: int | None = None):
    """ONNX Runtime options for every session of maskmtl (the model and RetinaFace).

    Intra-op threads do not spin-wait for the next piece of work: maskmtl alternates between
    two sessions (detector, then model) and Python work in between, and spinning threads of one
    session took the cores from the other. Measured on the 2 cores, default model, one photo
    through ``predict_image``: 67-69 ms and 135-147 ms of CPU with spinning, 44-47 ms and
    70-76 ms without (docs/predict.md).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


def open_session(path: Path, threads: int | None = None, what: str = "model",
                 remedy: str = "export it again with `maskmtl train` or pass another model"):
    """An ONNX Runtime CPU session of ``path``; ModelError naming ``what`` when it cannot load.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads; None lets ONNX Runtime use every core.
        what: What the file should be, for the message ("model", "unmasking model").
        remedy: What to do instead, for the message.
    """
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), session_options(threads),
                                            providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        reason = str(error).strip().splitlines()[-1][:200] if str(error).strip() else ""
        raise ModelError(f"Cannot load {what} '{path}': not a readable ONNX file ({reason}). It "
                         f"may be truncated; {remedy}.") from None


class OnnxModel:
    """A maskmtl model run by ONNX Runtime, with the interface the rest of the code uses.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads; None lets ONNX Runtime use every core.

    Attributes:
        input_shape: ``(None, size, size, channels)``.
        output_names: The model's outputs, in the file's order.
        output_widths: Width of each output.
        output_ranks: Rank of each output (4 for ``segmentation``).
        task_specs: The model's tasks, from the file's metadata or its outputs.
    """

    def __init__(self, path: str | Path, threads: int | None = None):

        self.path = Path(path)
        self.session = open_session(self.path, threads)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"'{self.path}' has {len(inputs)} inputs; a maskmtl model has 1. "
                             "Use a model trained with `maskmtl train`.")
        self._input_name = inputs[0].name
        shape = inputs[0].shape
        self.input_shape = (None, *(d if isinstance(d, int) else None for d in shape[1:]))
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.output_widths = {output.name: output.shape[-1] if output.shape else None
                              for output in self.session.get_outputs()}
        self.output_ranks = {output.name: len(output.shape or ())
                             for output in self.session.get_outputs()}
        found = specs_from_metadata(self.session.get_modelmeta().custom_metadata_map or {})
        self.task_specs = found[0] if found else specs_from_outputs(self.output_names,
                                                                    self.output_widths)

    def predict_on_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for one float32 batch ``(N, size, size, C)``, keyed by output name."""
        values = self.session.run(None, {self._input_name: np.ascontiguousarray(batch, "float32")})
        return dict(zip(self.output_names, values))
