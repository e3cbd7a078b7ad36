"""The facts of the authors' five published ImageNet symbol files that the architecture
tests compare with: every layer's op and the attributes that decide what its weights mean,
every argument and auxiliary state with its shape for a 224x224 image, and the parameter,
auxiliary-state and multiply-add counts per stage.

The files themselves are not in this repository; their facts are, in
``tests/data/published_symbols.json``, so the tests run in every clone. Regenerate them
from the files (e.g. the developers' ``../shared/reference/original_models``)::

    .venv/bin/python tests/published_facts.py PATH/TO/original_models
"""
import json
import sys
from pathlib import Path

import mxnet as mx

FACTS_FILE = Path(__file__).resolve().parent / 'data' / 'published_symbols.json'
IMAGE = (3, 224, 224)

# layer attributes that decide whether a checkpoint's weights mean the same thing
ATTRS = {'Convolution': ('num_filter', 'num_group', 'kernel', 'stride', 'pad', 'no_bias'),
         'Reorder': ('branch_factor',),
         'BatchNorm': ('momentum', 'eps', 'fix_gamma'),
         'Pooling': ('kernel', 'stride', 'pad', 'pool_type', 'global_pool'),
         'FullyConnected': ('num_hidden',), 'Activation': ('act_type',)}
DEFAULTS = {'num_group': '1', 'stride': '(1,1)', 'pad': '(0,0)', 'global_pool': 'False',
            'no_bias': 'False', 'fix_gamma': 'True'}


def layer_attrs(symbol):
    """{layer name: [op, [attribute values]]} of the layers in ATTRS, values normalized
    (spaces and case of MXNet's spellings, defaults written out)."""
    out = {}
    for node in json.loads(symbol.tojson())['nodes']:
        if node['op'] not in ATTRS:
            continue
        attrs = node.get('attrs', {})
        values = []
        for key in ATTRS[node['op']]:
            v = str(attrs.get(key, DEFAULTS.get(key))).replace(' ', '').lower()
            values.append(float(v) if key in ('momentum', 'eps') else v)
        out[node['name']] = [node['op'], values]
    return out


def shapes(symbol, image=IMAGE):
    """({argument: shape}, {auxiliary state: shape}) for one image, shapes as lists."""
    args, _, aux = symbol.infer_shape(data=(1, *image))
    return ({n: list(s) for n, s in zip(symbol.list_arguments(), args, strict=True)},
            {n: list(s) for n, s in zip(symbol.list_auxiliary_states(), aux, strict=True)})


def facts(symbol):
    """The facts of one symbol, as the JSON file holds them."""
    from igc_mx import counting
    arguments, aux = shapes(symbol)
    totals = counting.totals(counting.profile(symbol, IMAGE))
    return {'layers': layer_attrs(symbol), 'arguments': arguments, 'aux': aux,
            'totals': {stage: list(values) for stage, values in totals.items()}}


def load():
    """{paper row label: facts} of the committed file."""
    return json.loads(FACTS_FILE.read_text())


def from_files(reference_dir):
    """{paper row label: facts} computed from the published files in ``reference_dir``."""
    from igc_mx import networks
    return {row.label: facts(mx.sym.load(str(Path(reference_dir) / row.published)))
            for row in networks.PAPER_ROWS}


def main(argv):
    if len(argv) != 1:
        sys.exit('usage: published_facts.py PATH/TO/original_models')
    import igc_mx  # noqa: F401  (the published files hold Reorder nodes)
    from igc_mx.atomic import atomic_path
    with atomic_path(FACTS_FILE) as tmp, open(tmp, 'w') as f:
        json.dump(from_files(argv[0]), f, indent=1)
        f.write('\n')
    print(f'wrote {FACTS_FILE}')


if __name__ == '__main__':
    main(sys.argv[1:])
