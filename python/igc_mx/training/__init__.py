"""Training harness shared by ``train_model.py`` and ``train_imagenet.py``.

The layout follows MXNet's ``example/image-classification/common``: argument
groups in :mod:`.args`, dataset recipes in :mod:`.presets`, iterators in
:mod:`.data`, and one :func:`.fit.fit` that owns the kvstore, checkpoints, the
learning-rate schedule and logging. The train scripts are presets plus one call.
"""
