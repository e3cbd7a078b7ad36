"""One module per source format: each reads a published download into a
``igc_mx.datasets.dataset.Dataset`` (two splits in canonical source order, the
manifest's record of the source files, and the paths the build reads), and refuses
damaged or unexpected input with a one-line ``UserError`` naming the file.

``cifar`` (CIFAR-10/100 python pickles), ``svhn`` (SVHN's .mat files), ``imagenet``
(class folders or im2rec .lst files), ``idx`` (the MNIST family's IDX files).
"""
