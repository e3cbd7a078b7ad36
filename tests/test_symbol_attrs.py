"""Operator attributes read back from a symbol's JSON, against what MXNet itself writes."""
import json
import re

import mxnet as mx
import pytest

from igc_mx import symbol_attrs


def attrs_of(symbol):
    return json.loads(symbol.tojson())['nodes'][-1]['attrs']


def test_values_mxnet_writes_read_back():
    conv = mx.sym.Convolution(mx.sym.var('x'), kernel=(3, 3), stride=(2, 1), num_filter=8,
                              num_group=2, no_bias=True)
    attrs = attrs_of(conv)
    assert symbol_attrs.ints(attrs, 'kernel', ()) == (3, 3)
    assert symbol_attrs.ints(attrs, 'stride', (1, 1)) == (2, 1)
    assert symbol_attrs.ints(attrs, 'pad', (0, 0)) == (0, 0)       # left unset
    assert symbol_attrs.integer(attrs, 'num_group', 1) == 2
    assert symbol_attrs.flag(attrs, 'no_bias', False) is True
    bn = attrs_of(mx.sym.BatchNorm(mx.sym.var('x'), fix_gamma=False))
    assert symbol_attrs.flag(bn, 'fix_gamma', True) is False


@pytest.mark.parametrize('text,value', [('(3, 3)', (3, 3)), ('[3,3]', (3, 3)), ('(3,)', (3,)),
                                        ('()', ()), ('None', (7,)), ('5', (5,))])
def test_tuple_spellings(text, value):
    assert symbol_attrs.ints({'k': text}, 'k', (7,)) == value


@pytest.mark.parametrize('reader,text', [(symbol_attrs.flag, 'maybe'),
                                         (symbol_attrs.integer, '2.5'),
                                         (symbol_attrs.ints, '(3, x)')])
def test_a_value_of_another_kind_names_the_attribute(reader, text):
    with pytest.raises(ValueError, match=re.escape(f'attribute k={text!r} is not')):
        reader({'k': text}, 'k', None)
