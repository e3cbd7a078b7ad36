"""The Module that ``fit`` trains: ``scoring.Module`` whose parameters are read only once
MXNet's engine has finished every operation pushed before.

MXNet 1.9.1's graph executor declares an operator's outputs to the engine as what it
writes, but not the inputs it mutates (``FMutateInputs``; ``GraphExecutor::InitCachedOps``
puts every input among the variables it reads). BatchNorm mutates its moving mean and
variance, which are inputs (on the CPU, oneDNN's BatchNorm updates them in the backward
pass). So the copy that ``get_params`` pushes at the end of an epoch may run before the
last batch's BatchNorm has updated them, and ``Module.fit`` then writes that copy back
with ``set_params``: depending on thread timing, the update is lost, and two identical
runs end with different statistics (first seen in the stem's BatchNorm, the last to run
in the backward pass). Waiting for the engine first makes the copy, and training, the
same in every run; it costs one wait per epoch, where the pipeline drains anyway.
"""
import mxnet as mx

from .. import scoring


class Module(scoring.Module):
    """``scoring.Module`` whose ``get_params`` first waits for every pushed operation."""

    def get_params(self):
        mx.nd.waitall()
        return super().get_params()
