"""The whole path on real data: the real Fashion-MNIST through igc-make-rec, a short
train_model.py run that learns it, igc-evaluate scoring every one of the 10,000 test
images as the training log did, and the ONNX export scoring them alike in ONNX Runtime.

The run is short on purpose: a small IGC network, one epoch of BATCHES batches of a
seeded shuffle of the training set (6,400 images, no augmentation, the lr divided by 10
after 3/4 of it), a minute or two on 2 CPUs; chance is 10 %. Seeds 0 to 3 of this run
reached 73.8 to 76.8 % test accuracy; the test asks for MIN_ACCURACY.
"""
import re

import numpy as np
import pytest

from igc_mx.tools import evaluate, export_onnx
from igc_mx.training import data
from igc_mx.training.config import DataConfig

from conftest import run_ort
from test_training import train_model

NETWORK = ['--network', 'resnet_igc', '--depth', '8', '--primary-partition', '8',
           '--secondary-partition', '2']
BATCHES, BATCH = 200, 32
MIN_ACCURACY = 0.65


@pytest.fixture(scope='module')
def trained(fashion_mnist_records, tmp_path_factory):
    """(model prefix, the training log) of the short run."""
    root = tmp_path_factory.mktemp('fashion-run')
    prefix, log = root / 'net', root / 'train.log'
    train_model.main(['--dataset', 'fashion-mnist', '--data-dir', str(fashion_mnist_records),
                      *NETWORK, '--num-epochs', '1', '--max-batches', str(BATCHES),
                      '--batch-size', str(BATCH), '--lr-steps', '0.75', '--aug-type', '0',
                      '--rand-seed', '0', '--log-iters', '50',
                      '--model-prefix', str(prefix), '--log-file', str(log)])
    return str(prefix), log.read_text()


@pytest.fixture(scope='module')
def scores(trained, fashion_mnist_records):
    """igc-evaluate's results for the run's checkpoint on the test records."""
    return evaluate.run(['--prefix', trained[0], '--epoch', '1', '--dataset', 'fashion-mnist',
                         '--data-dir', str(fashion_mnist_records), '--quiet'])


def logged_accuracy(log):
    return re.findall(r'Epoch\[0\] Validation-accuracy=([0-9.]+)', log)[-1]


def test_a_short_run_learns_the_real_data(trained):
    _, log = trained
    assert float(logged_accuracy(log)) >= MIN_ACCURACY


def test_evaluate_scores_every_test_image_as_the_log(trained, scores):
    assert scores['num_images'] == 10000
    # the log prints Module.fit's validation metric with '%f'
    assert f"{scores['top1']:f}" == logged_accuracy(trained[1])


def test_the_onnx_export_scores_alike(trained, scores, fashion_mnist_records, ort_python,
                                      tmp_path):
    prefix, _ = trained
    model = tmp_path / 'net.onnx'
    export_onnx.run(['--prefix', prefix, '--epoch', '1', '-o', str(model),
                     '--input-shape', '1,1,28,28'])
    config = DataConfig.for_validation('fashion-mnist',
                                       str(fashion_mnist_records / 'test.rec'), 10000,
                                       threads=2)
    batch = next(iter(data.validation_iter(config)))
    images, labels = batch.data[0].asnumpy(), batch.label[0].asnumpy().astype(int)
    assert images.shape == (10000, 1, 28, 28) and batch.pad == 0
    probabilities = run_ort(ort_python, model, images, tmp_path)
    assert np.mean(probabilities.argmax(1) == labels) == pytest.approx(scores['top1'],
                                                                       abs=1e-12)
