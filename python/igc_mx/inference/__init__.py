"""Inference with a trained model: ``optimize`` folds a symbol's BatchNorm, residual sum
and ReLU layers into its convolutions, ``Predictor`` serves a checkpoint's class
probabilities for numpy batches."""
from .optimize import InferenceError, optimize
from .predictor import Predictor

__all__ = ['InferenceError', 'Predictor', 'optimize']
