"""The one training stack every run stands on (MAE, text adaptation, image fine-tuning, every plugin's task model).

- :mod:`.settings`: :class:`TrainSettings`, the fields every run has (precision, devices,
  strategy, seed, length, checkpoint interval, wall-clock cap), checked in one place. Torch-free.
- :mod:`.optim`: AdamW with decay / no-decay groups and one warmup-then-decay schedule.
- :mod:`.sampling`: :class:`EpochSampler`, a data order that is a function of (seed, epoch) and
  resumes mid-epoch.
- :mod:`.checkpoints`: atomic checkpoint writes, the checkpoint a run resumes from, the training clock.
- :mod:`.trainer`: :func:`fit`, the only place a Lightning ``Trainer`` is built.

Import the submodules: this package's ``__init__`` imports nothing, so the torch-free settings
load without torch.
"""
