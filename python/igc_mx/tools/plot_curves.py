"""Plot train and test error per epoch from training logs.

    igc-plot-curves LOG [LOG ...] -o curves.png [--labels a,b] [--title T]

Reads MXNet's per-epoch lines ``Epoch[N] Train-accuracy=…`` and
``Epoch[N] Validation-accuracy=…`` (as written by train_model.py and
train_imagenet.py, and by Module.fit in general). A resumed run repeats some
epochs; the last value of each epoch wins. Two panels side by side, training
error and test error, one line per log, as in the paper's figures. The PNG is
written atomically. Needs matplotlib (``pip install igc-mx[plot]``), not MXNet.
Also ``python tools/plot_curves.py`` in a checkout.
"""
import argparse
import os
import re
import sys

from ..atomic import atomic_path, check_target

LINE = re.compile(r'Epoch\[(\d+)\] (Train|Validation)-accuracy=([0-9.eE+-]+|nan)')


def parse_log(path):
    """{'train': {epoch: error %}, 'test': {...}} with epochs counted from 1."""
    curves = {'train': {}, 'test': {}}
    with open(path, errors='replace') as f:
        for line in f:
            m = LINE.search(line)
            if m:
                kind = 'train' if m.group(2) == 'Train' else 'test'
                value = float(m.group(3))
                if value == value:  # skip nan (an epoch without validation batches)
                    curves[kind][int(m.group(1)) + 1] = 100.0 * (1.0 - value)
    return curves


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or a clear error without matplotlib."""
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise RuntimeError("plotting needs matplotlib: pip install 'igc-mx[plot]' "
                           '(or matplotlib)') from exc
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot(logs, out, labels=None, title=None):
    check_target(out, logs, '-o')
    runs = [parse_log(p) for p in logs]
    if not any(r['train'] or r['test'] for r in runs):
        raise ValueError('no "Epoch[N] Train-accuracy=" or "Validation-accuracy=" lines in '
                         + ', '.join(logs))
    labels = labels or [os.path.splitext(os.path.basename(p))[0] for p in logs]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for run, label in zip(runs, labels, strict=True):
        for ax, kind in zip(axes, ('train', 'test'), strict=True):
            points = sorted(run[kind].items())
            if points:
                ax.plot([e for e, _ in points], [v for _, v in points], label=label, lw=1.2,
                        marker='o' if len(points) < 30 else None, ms=3)
    for ax, name in zip(axes, ('training error (%)', 'test error (%)'), strict=True):
        ax.set_xlabel('epoch')
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out, logs, '-o') as tmp:
        fig.savefig(tmp, format='png', dpi=120)
    plt.close(fig)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('logs', nargs='+', help='log files')
    parser.add_argument('-o', '--out', required=True, help='output PNG')
    parser.add_argument('--labels', help='comma-separated legend labels, one per log')
    parser.add_argument('--title')
    args = parser.parse_args(argv)
    labels = args.labels.split(',') if args.labels else None
    if labels and len(labels) != len(args.logs):
        parser.error(f'{len(labels)} labels for {len(args.logs)} logs')
    try:
        plot(args.logs, args.out, labels, args.title)
    except (OSError, ValueError, RuntimeError) as err:
        sys.exit(f'error: {err}')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
