"""Shared fixtures. `../shared` exists beside the developers' checkout only: tests
that read it skip, with the reason, in a user's clone."""
import os
import random
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_MODELS = REPO_ROOT.parent / 'shared' / 'reference' / 'original_models'

# (table row, file) for the authors' published ImageNet symbol files.
PUBLISHED_SYMBOLS = [
    ('ResNet-18 C=64', 'ResNet18-w64_ImageNet/resnet_d18-symbol.json'),
    ('ResNet-18 C=69', 'ResNet18-w69_ImageNet/resnet_d18_w69-symbol.json'),
    ('IGC-L4M32', 'IGC-L4M32_ImageNet/resnet_gcwf_noshare_imagenet_d18b4-symbol.json'),
    ('IGC-L16M16', 'IGC-L16M16_ImageNet/resnet_gcwf_noshare_imagenet_d18b16-symbol.json'),
    ('IGC-L100M2', 'IGC-L100M2_ImageNet/resnet_gcwf_noshare_imagenet_d18b100-symbol.json'),
]


# Prepended to the code of a subprocess: MXNet cannot be imported there, as on a machine
# without it (e.g. a GPU machine running the kernels alone).
BLOCK_MXNET = """
import sys

class _BlockMXNet:
    def find_spec(self, name, path=None, target=None):
        if name == 'mxnet' or name.startswith('mxnet.'):
            raise ModuleNotFoundError("No module named 'mxnet'", name='mxnet')

sys.meta_path.insert(0, _BlockMXNet())
"""



def load_module(name, path):
    """The Python file ``path`` (relative to the repository root) as module ``name``: the
    scripts and bench helpers the tests use, which are not in a package."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_params(symbol, data_shape, seed=0):
    """Random weights, and BatchNorm statistics far from the identity (mean != 0,
    var != 1, gamma != 1, beta != 0)."""
    import mxnet as mx
    rng = np.random.RandomState(seed)
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=data_shape)
    args = {}
    for name, shape in zip(symbol.list_arguments(), arg_shapes, strict=True):
        if name == 'data' or name.endswith('_label'):
            continue
        if name.endswith('_weight') and len(shape) > 1:
            value = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        elif name.endswith('_gamma'):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0, 0.3, shape)
        args[name] = mx.nd.array(value)
    aux = {}
    for name, shape in zip(symbol.list_auxiliary_states(), aux_shapes, strict=True):
        value = (rng.uniform(0.5, 2.0, shape) if name.endswith('_var')
                 else rng.normal(0, 0.5, shape))
        aux[name] = mx.nd.array(value)
    return args, aux


def reorder_reference(x, g):
    """Reorder in numpy: channels viewed as (g, C/g), axes swapped, so that
    out[j*g+i] = in[i*(C/g)+j]."""
    n, c = x.shape[:2]
    return x.reshape(n, g, c // g, *x.shape[2:]).swapaxes(1, 2).reshape(x.shape)

@pytest.fixture(scope='session')
def published_models_dir():
    if not PUBLISHED_MODELS.is_dir():
        pytest.skip(f'published symbol files not available: {PUBLISHED_MODELS} is absent '
                    '(it ships beside the developers\' checkout only)')
    return PUBLISHED_MODELS


@pytest.fixture(autouse=True)
def seeded_global_generators():
    """Seed the global generators that library helpers draw from (MXNet's
    check_numeric_gradient and initializers), so that every test is repeatable.
    Tests draw their own data from explicitly seeded generators."""
    random.seed(0)
    np.random.seed(0)
    if 'mxnet' in sys.modules:
        sys.modules['mxnet'].random.seed(0)


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Networks registered during a test (by the test, or by train_model.main loading a
    --network-dir) are gone after it."""
    if 'igc_mx.networks' in sys.modules:
        registry = sys.modules['igc_mx.networks']
        monkeypatch.setattr(registry, '_REGISTRY', dict(registry._REGISTRY))


@pytest.fixture(scope='session')
def dataset(tmp_path_factory):
    """train.rec (640 images) and test.rec (200) of the synthetic CIFAR-10 archive."""
    from test_training import synthetic, write_rec
    root = tmp_path_factory.mktemp('synthetic')
    archive = synthetic.write_archive(str(root / 'syn.tar.gz'), num_train=640, num_test=200,
                                      seed=3)
    return write_rec(archive, str(root / 'rec'))


@pytest.fixture(scope='session')
def net_dir(tmp_path_factory):
    """A --network-dir holding the network 'tiny' (test_training.TINY_NET)."""
    from test_training import TINY_NET
    d = tmp_path_factory.mktemp('net')
    (d / 'tiny.py').write_text(TINY_NET)
    return str(d)


#: the images of the ``trained`` checkpoint's test records, and its batch: the last
#: batch is padded
TRAINED_TEST_IMAGES = 100
TRAINED_BATCH = 32
#: get_symbol's arguments of the ``trained`` network
TRAINED_NETWORK = ('resnet_igc', 10, 8, 4, 2)


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    """A tiny resnet_igc (TRAINED_NETWORK) trained 2 epochs by train_model.py on
    synthetic CIFAR records made by igc_mx.datasets.synthetic_cifar and make_rec (as
    scripts/main.sh): ``prefix`` (epochs 1 and 2), ``rec`` (the record directory) and the
    ``log``."""
    from igc_mx.datasets import synthetic_cifar
    from igc_mx.tools import make_rec

    from test_training import train_model
    root = tmp_path_factory.mktemp('after')
    archive = synthetic_cifar.write_archive(str(root / 'syn.tar.gz'), num_train=256,
                                            num_test=TRAINED_TEST_IMAGES, seed=4)
    rec = root / 'rec'
    assert make_rec.main(['cifar10', archive, str(rec), '--workers', '1', '--quiet']) == 0
    prefix = root / 'weights' / 'net'
    log = root / 'train.log'
    network, num_classes, depth, primary, secondary = TRAINED_NETWORK
    assert num_classes == 10        # cifar10, train_model.py's default dataset
    train_model.main(['--network', network, '--primary-partition', str(primary),
                      '--secondary-partition', str(secondary), '--depth', str(depth),
                      '--data-dir', str(rec), '--batch-size', str(TRAINED_BATCH),
                      '--test-batch-size', str(TRAINED_BATCH), '--num-epochs', '2',
                      '--checkpoint-epochs', '1', '--rand-seed', '0', '--log-iters', '4',
                      '--data-nthreads', '1', '--log-file', str(log),
                      '--model-prefix', str(prefix)])
    return types.SimpleNamespace(prefix=str(prefix), rec=str(rec), log=log.read_text())


def required(what, reason):
    """Skip the test for want of ``what``, with ``reason``; under CI (``CI`` set), where
    everything the suite needs is installed, fail instead."""
    if os.environ.get('CI'):
        pytest.fail(f'CI must run the tests that need {what}, but {reason}')
    pytest.skip(reason)


# The real Fashion-MNIST download (apt-get install dataset-fashion-mnist puts it there).
FASHION_MNIST = Path(os.environ.get('IGC_FASHION_MNIST') or '/usr/share/datasets/fashion-mnist')
FASHION_MNIST_FILES = [f'{split}-{kind}-ubyte.gz' for split in ('train', 't10k')
                       for kind in ('images-idx3', 'labels-idx1')]


@pytest.fixture(scope='session')
def fashion_mnist_dir():
    missing = [f for f in FASHION_MNIST_FILES if not (FASHION_MNIST / f).is_file()]
    if missing:
        required('the Fashion-MNIST files', f'the Fashion-MNIST files are not available: '
                 f'{FASHION_MNIST} lacks {", ".join(missing)} (apt-get install '
                 'dataset-fashion-mnist, or set IGC_FASHION_MNIST to a folder holding them)')
    return FASHION_MNIST


def side_python(variable, venv, module, what):
    """The interpreter of a side environment (scripts/side_envs.sh) that imports
    ``module``: ONNX Runtime and PyTorch need numpy >= 1.24, MXNet 1.9.1 numpy < 1.24, so
    the tests run them in a subprocess."""
    python = Path(os.environ.get(variable) or REPO_ROOT / venv / 'bin' / 'python')
    probe = subprocess.run([str(python), '-c', f'import {module}'], capture_output=True,
                           text=True) if python.is_file() else None
    if probe is None or probe.returncode != 0:
        required(what, f'{what} is not available: {python} cannot import {module} '
                       f'(scripts/test.sh installs it into {venv}; that needs network access '
                       'to PyPI)')
    return str(python)


@pytest.fixture(scope='session')
def ort_python():
    return side_python('IGC_ORT_PYTHON', '.venv-ort', 'onnxruntime', 'ONNX Runtime')


@pytest.fixture(scope='session')
def torch_python():
    return side_python('IGC_TORCH_PYTHON', '.venv-torch', 'torch', 'PyTorch')


def run_ort(ort_python, model_path, images, tmp_path):
    """ONNX Runtime's output for ``images``, computed by tools/onnx_run.py in the ONNX
    Runtime environment."""
    x, y = Path(tmp_path) / 'images.npy', Path(tmp_path) / 'ort_out.npy'
    np.save(x, np.asarray(images, dtype=np.float32))
    proc = subprocess.run([ort_python, str(REPO_ROOT / 'tools' / 'onnx_run.py'),
                           str(model_path), str(x), '-o', str(y)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(y)



def read_idx(path):
    """The array of an IDX file of unsigned bytes (gzipped when its name ends in .gz),
    parsed here with numpy: the tests' reference for igc_mx.datasets' reader."""
    import gzip
    import struct
    with open(path, 'rb') as f:
        data = f.read()
    if str(path).endswith('.gz'):
        data = gzip.decompress(data)
    ndim = data[3]
    shape = struct.unpack_from(f'>{ndim}I', data, 4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@pytest.fixture(scope='session')
def fashion_mnist_records(fashion_mnist_dir, tmp_path_factory):
    """The records of the real Fashion-MNIST, as igc-make-rec builds them (train.rec,
    test.rec and the manifest in one folder)."""
    from igc_mx.tools import make_rec
    out = tmp_path_factory.mktemp('fashion-mnist') / 'rec'
    assert make_rec.main(['fashion-mnist', str(fashion_mnist_dir), str(out), '--workers', '2',
                          '--quiet']) == 0
    return out


@pytest.fixture(scope='session')
def fashion_mnist_images(fashion_mnist_dir):
    """``read(split)`` -> (uint8 images (n, 28, 28), int labels (n,)) of the real
    Fashion-MNIST's 'train' or 't10k' split."""
    def read(split):
        return (read_idx(fashion_mnist_dir / f'{split}-images-idx3-ubyte.gz'),
                read_idx(fashion_mnist_dir / f'{split}-labels-idx1-ubyte.gz').astype(int))
    return read
