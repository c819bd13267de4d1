"""The shared training stack's progress bar: an epoch count that reads right for every kind of run."""

from types import SimpleNamespace

import pytest

from vfm.platform.training.trainer import RunProgressBar


@pytest.mark.parametrize(
    ("max_steps", "max_epochs", "expected"),
    [
        (1000, -1, "Epoch 29 (1,000 steps in all)"),  # Lightning's own bar: "Epoch 28/-2"
        (-1, 9, "Epoch 29/9"),
        (-1, None, "Epoch 29"),
    ],
)
def test_the_progress_bar_counts_epochs_from_one_with_the_run_length(max_steps, max_epochs, expected):
    bar = RunProgressBar()
    bar._trainer = SimpleNamespace(max_steps=max_steps, max_epochs=max_epochs)
    assert bar._get_train_description(28) == expected
