"""Training: ``TrainConfig`` -> a run folder with the best model, history, curves and summary.

Modules: ``config`` (settings and defaults, standard library only), ``data`` (manifest ->
uint8 arrays and targets), ``devices`` (one or several devices), ``run_folder`` (making and
resuming ``runs/train``, ``runs/train2``, ...), ``state`` (``state.json``), ``trainer`` (the
compiled ``MultiTaskTrainer``), ``callbacks`` (recorder and progress), ``summary``
(``summary.json``), ``report`` (learning curves) and ``loop`` (``train``, the one entry point).
The Keras backend is chosen by ``maskmtl_cli.backend``, shared with inference.

Import ``maskmtl_cli.training.loop`` for ``train``; this package itself stays light so that the
CLI can read the defaults without importing numpy or Keras.
"""

from maskmtl_cli.training.config import TrainConfig

__all__ = ["TrainConfig"]
