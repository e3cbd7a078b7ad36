"""Training img/s of the builders' default networks for several values of
igc_mx.blocks.AUTO_GROUP_CONV_MAX_PER_GROUP (the filters per group up to which
group_conv='auto' picks GroupConvolution), side by side in one process: the
measurement behind that limit.

    OMP_NUM_THREADS=2 python bench/bench_auto_limit.py --limits 8 16 32 [--case 1]

--case indexes bench_network.CASES (0: CIFAR resnet_igc L24M2, 1: ImageNet
IGC-L16M16). Prints img/s per limit; run it more than once, and in both orders:
on a shared machine the spread between runs is often larger than the differences.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_network import CASES, STEPS, training_step  # noqa: E402

from igc_mx import blocks, networks  # noqa: E402

import common  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--limits', type=int, nargs='+', required=True,
                        help='values of AUTO_GROUP_CONV_MAX_PER_GROUP to compare')
    parser.add_argument('--case', type=int, default=0, choices=range(len(CASES)),
                        help='which bench_network case (default 0)')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs per limit')
    args = parser.parse_args(argv)
    label, network, net_args, batch, image, classes = CASES[args.case]
    default = blocks.AUTO_GROUP_CONV_MAX_PER_GROUP
    steps = {}
    try:
        for limit in args.limits:
            # The builders read the limit when they build, so each symbol keeps its own.
            blocks.AUTO_GROUP_CONV_MAX_PER_GROUP = limit
            steps[limit] = training_step(networks.get_symbol(network, *net_args), batch,
                                         image, classes)
    finally:
        blocks.AUTO_GROUP_CONV_MAX_PER_GROUP = default
    ms = common.side_by_side(steps, args.repeat, min_time=0)
    print(label)
    for limit in args.limits:
        print(f'  limit {limit:4d}: {batch * STEPS / (ms[limit] / 1e3):7.1f} img/s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
