"""A run whose parameters or validation loss turn NaN or infinite stops with one line and
never writes a checkpoint that is not finite, also when its training loss stays finite."""
import glob
import re

import mxnet as mx
import numpy as np
import pytest

from igc_mx.training import checkpoint, divergence

from test_training import train_model


def all_finite(prefix):
    return {path: all(np.isfinite(v.asnumpy()).all() for v in mx.nd.load(path).values())
            for path in sorted(glob.glob(f'{prefix}-*.params'))}


def test_a_huge_lr_stops_the_run_before_a_checkpoint_that_is_not_finite(dataset, net_dir,
                                                                       tmp_path, capsys):
    prefix = tmp_path / 'm'
    with pytest.raises(SystemExit) as exit_:
        train_model.main(['--network', 'tiny', '--network-dir', net_dir, '--data-dir', dataset,
                          '--model-prefix', str(prefix), '--num-epochs', '4', '--lr', '1e8',
                          '--batch-size', '32', '--max-batches', '3', '--max-val-batches', '1',
                          '--checkpoint-epochs', '1', '--rand-seed', '5',
                          '--data-nthreads', '1'])
    message = str(exit_.value.code)
    assert re.fullmatch(r'error: (the validation loss is nan|\S+ is no longer finite[^,]*) at '
                        r'the end of epoch \d[^\n]*\(the initial lr is 1e\+08\)', message), message
    epoch = int(re.search(r'epoch (\d)', message).group(1))
    # the training loss stayed finite: the per-batch check alone would have let it run on
    log = (tmp_path / 'm.txt').read_text()
    assert f'Epoch[{epoch}] Train-cross-entropy=nan' not in log
    saved = all_finite(prefix)
    assert all(saved.values()), saved
    assert sorted(saved) == [checkpoint.params_file(str(prefix), e + 1) for e in range(epoch)]


def saver(tmp_path, period=1, num_epochs=3):
    return checkpoint.Saver(str(tmp_path / 'm'), period, num_epochs, lr=0.5)


def params(moving_var=1.0):
    return ({'w_weight': mx.nd.ones((2, 2))},
            {'bn_moving_var': mx.nd.array([1.0, moving_var])})


def validated(value):
    metric = mx.metric.CompositeEvalMetric([mx.metric.create('acc'),
                                            mx.metric.create('ce')])
    prob = mx.nd.array([[value, 1 - value]]) if np.isfinite(value) else \
        mx.nd.array([[value, value]])
    metric.update([mx.nd.array([0])], [prob])
    return mx.model.BatchEndParam(epoch=0, nbatch=1, eval_metric=metric, locals={})


def test_the_saver_writes_a_checkpoint_after_its_validation(tmp_path):
    save = saver(tmp_path)
    save.epoch_end(0, mx.sym.var('w_weight'), *params())
    assert not glob.glob(str(tmp_path / '*.params'))      # not before the validation
    save.validation_end(validated(0.75))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['m-0001.params', 'm-symbol.json']


@pytest.mark.parametrize('value', [np.nan, np.inf])
def test_non_finite_parameters_stop_the_run_at_the_epoch_end(tmp_path, value):
    save = saver(tmp_path)
    with pytest.raises(divergence.TrainingDiverged, match=(
            r'^bn_moving_var is no longer finite at the end of epoch 0 \(training normalizes '
            r'with the batch statistics, so the training loss does not show it\), so the run '
            r'stops here and saves nothing of this epoch; resume from the last checkpoint with '
            r'a lower --lr \(the initial lr is 0.5\)$')):
        save.epoch_end(0, mx.sym.var('w_weight'), *params(moving_var=value))
    assert not list(tmp_path.iterdir())


def test_a_validation_loss_that_is_not_finite_stops_the_run_unsaved(tmp_path):
    save = saver(tmp_path)
    save.epoch_end(0, mx.sym.var('w_weight'), *params())
    with pytest.raises(divergence.TrainingDiverged,
                       match='^the validation loss is nan at the end of epoch 0: '):
        save.validation_end(validated(np.nan))
    assert not list(tmp_path.iterdir())


def test_save_refuses_arrays_that_are_not_finite(tmp_path):
    arg_params, aux_params = params(moving_var=np.nan)
    with pytest.raises(divergence.TrainingDiverged,
                       match=f'^bn_moving_var is not finite: checkpoint {tmp_path}/m-0001.params '
                             'is not written$'):
        checkpoint.save(str(tmp_path / 'm'), 1, mx.sym.var('w_weight'), arg_params, aux_params)
    assert not list(tmp_path.iterdir())
