"""Deprecated keyword names that still work."""
import warnings


def renamed_argument(function, name, value, old_name, old_value):
    """``value``, or ``old_value`` given under the deprecated keyword ``old_name`` (with a
    DeprecationWarning). Giving both, or neither, is a TypeError."""
    if old_value is None:
        if value is None:
            raise TypeError(f"{function}() missing required argument '{name}'")
        return value
    if value is not None:
        raise TypeError(f'{function}(): give {name} only ({old_name} is its deprecated name)')
    warnings.warn(f'{function}({old_name}=...) is deprecated: use {name}', DeprecationWarning,
                  stacklevel=3)
    return old_value
