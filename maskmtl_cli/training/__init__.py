"""Training: ``TrainConfig`` -> a run folder with the best model, history, curves and summary.

Modules: ``config`` (settings and defaults, standard library only), ``data`` (manifest ->
uint8 arrays and targets), ``backend`` (Keras backend, device, precision), ``run_folder``
(``runs/train``, ``runs/train2``, ... and their files), ``callbacks`` (recorder and progress),
``report`` (learning curves) and ``loop`` (``train``, the one entry point).

Import ``maskmtl_cli.training.loop`` for ``train``; this package itself stays light so that the
CLI can read the defaults without importing numpy or Keras.
"""

from maskmtl_cli.training.config import TrainConfig

__all__ = ["TrainConfig"]
