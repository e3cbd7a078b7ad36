"""Ctrl-C stops training at any point with one line and exit status 130, also when it
arrives inside a finalizer (the record iterators' __del__), where Python drops it."""
import os
import signal
import subprocess
import sys
import time

import mxnet as mx
import pytest

from igc_mx.training import checkpoint
from igc_mx.training.interrupts import Interrupts

from test_training import REPO, train_model


class SignalsInFinalizer:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)    # the handler runs here, inside __del__


def test_an_interrupt_inside_a_finalizer_is_raised_at_the_next_check():
    with Interrupts() as interrupts:
        finalized = SignalsInFinalizer()
        del finalized                     # Python would print and drop a KeyboardInterrupt
        assert interrupts.received
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    with Interrupts() as interrupts, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)                     # elsewhere it is raised at once


def run_args(dataset, net_dir, prefix, *extra):
    return ['--network', 'tiny', '--network-dir', net_dir, '--data-dir', dataset,
            '--batch-size', '32', '--max-batches', '3', '--max-val-batches', '1',
            '--checkpoint-epochs', '1', '--rand-seed', '1', '--data-nthreads', '1',
            '--log-iters', '1', '--model-prefix', str(prefix), *extra]


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_in_the_iterator_freed_after_a_checkpoint_stops_the_run(dataset, net_dir,
                                                                      tmp_path, monkeypatch,
                                                                      capsys):
    """The record iterator of an epoch is freed right after its checkpoint is saved: a
    Ctrl-C then lands in its __del__."""
    prefix = tmp_path / 'm'
    first_checkpoint = checkpoint.params_file(str(prefix), 1)
    real_del = mx.io.MXDataIter.__del__
    sent = []

    def __del__(self):   # MXDataIter's, with a signal inside
        if os.path.exists(first_checkpoint) and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
        real_del(self)
    monkeypatch.setattr(mx.io.MXDataIter, '__del__', __del__)
    with pytest.raises(SystemExit) as exit_:
        train_model.main(run_args(dataset, net_dir, prefix, '--num-epochs', '3'))
    assert sent and exit_.value.code == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        'error: interrupted (Ctrl-C); the checkpoints saved so far are complete: resume from '
        'the last one with --load-epoch')
    assert 'Traceback' not in err and 'Exception ignored' not in err
    assert os.path.exists(first_checkpoint)
    assert not os.path.exists(checkpoint.params_file(str(prefix), 2))


def test_ctrl_c_right_after_a_save_exits_with_status_130(dataset, net_dir, tmp_path):
    proc = subprocess.Popen([sys.executable, str(REPO / 'train_model.py'),
                             *run_args(dataset, net_dir, tmp_path / 'm', '--num-epochs', '4')],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if 'Saved checkpoint' in line:
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, ''.join(lines) + rest
    assert 'Traceback' not in rest and 'Exception ignored' not in rest, rest
    assert rest.strip().splitlines()[-1].startswith('error: interrupted (Ctrl-C)')
    assert not os.path.exists(checkpoint.params_file(str(tmp_path / 'm'), 4))


@pytest.mark.parametrize('name,one_line', [('igc-startup', True), ('user_program.py', False)])
def test_ctrl_c_while_a_command_starts_is_one_line(tmp_path, name, one_line):
    """A KeyboardInterrupt before a command's main (during ``import mxnet``, say) is one
    line naming the command and exit status 130; a user's program that imports igc_mx
    keeps the traceback and Python's end by SIGINT."""
    script = tmp_path / name
    script.write_text(f'#!{sys.executable}\nimport igc_mx\nraise KeyboardInterrupt\n')
    script.chmod(0o755)
    proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, 'IGC_MX_NO_MXNET': '1'})
    if one_line:
        assert (proc.returncode, proc.stderr) == (130, f'{name}: interrupted\n')
    else:
        assert proc.returncode == -signal.SIGINT
        assert proc.stderr.startswith('Traceback') and 'KeyboardInterrupt' in proc.stderr
