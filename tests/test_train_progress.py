"""The per-epoch progress display of `maskmtl train` (drawn on stderr)."""

from __future__ import annotations

from maskmtl_cli.training.callbacks import ProgressDisplay


def test_progress_display_prints_one_line_per_epoch(capsys):
    display = ProgressDisplay(epochs=2, initial_epoch=0, steps_per_epoch=3)
    display.on_train_begin()
    for epoch in range(2):
        display.on_epoch_begin(epoch)
        for batch in range(3):
            display.on_train_batch_end(batch)
        display.on_epoch_end(epoch, {"loss": 1.5, "val_loss": 1.25, "val_gender_acc": 0.75})
    display.on_train_end()
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "75.0%" in err
