"""Operator attributes of a symbol's JSON, read as Python values.

MXNet stores every attribute as a string (``"(3, 3)"``, ``"True"``, ``"64"``) and parses
it with the operator's own parameter types; the graph rewrites and the ONNX exporter read
them back here, one parser for the three kinds they need. A value that is not of the kind
asked for is a ValueError naming the attribute.
"""

TRUE = ('True', 'true', '1')
FALSE = ('False', 'false', '0')


def flag(attrs, key, default):
    """A boolean attribute (MXNet writes ``True``/``False``, and reads ``1``/``0`` too)."""
    text = attrs.get(key)
    if text is None:
        return default
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f'attribute {key}={text!r} is not a boolean')


def _scalar(attrs, key, default, cast, kind):
    text = attrs.get(key)
    if text is None:
        return default
    try:
        return cast(text)
    except ValueError:
        raise ValueError(f'attribute {key}={text!r} is not {kind}') from None


def integer(attrs, key, default):
    """An integer attribute."""
    return _scalar(attrs, key, default, int, 'an integer')


def number(attrs, key, default):
    """A floating-point attribute."""
    return _scalar(attrs, key, default, float, 'a number')


def ints(attrs, key, default):
    """A tuple-of-integers attribute such as ``kernel``: ``(3, 3)``, ``[3,3]``, ``(3,)``,
    ``()``; ``None`` (MXNet's unset optional tuple) gives ``default``."""
    text = attrs.get(key)
    if text is None or text.strip() == 'None':
        return tuple(default)
    items = [v.strip() for v in text.strip().strip('()[]').split(',')]
    if items and not items[-1]:
        items.pop()              # the trailing comma of "(3,)"
    try:
        return tuple(int(v) for v in items)
    except ValueError:
        raise ValueError(f'attribute {key}={text!r} is not a tuple of integers') from None


def text(attrs, key, default):
    """A string attribute such as ``layout`` or ``act_type``; ``None`` (MXNet's unset
    optional value) gives ``default``."""
    value = attrs.get(key)
    return default if value is None or value.strip() == 'None' else value.strip()


def shape(attrs, key, default):
    """An optional shape parameter of a convolution or pooling (``stride``, ``pad``,
    ``dilate``, ``adj``): absent, ``None`` or empty (``()``) is ``default``, as in
    MXNet."""
    return ints(attrs, key, ()) or tuple(default)


def optional(read, attrs, key, default):
    """``read(attrs, key, default)`` for MXNet's "X or None" parameters (``p_value``,
    ``temperature``, ``end``): ``None`` gives ``default``."""
    value = attrs.get(key)
    if value is not None and value.strip() == 'None':
        return default
    return read(attrs, key, default)
