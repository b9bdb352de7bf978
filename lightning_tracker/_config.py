"""Hyperparameters: turn whatever the user logs into plain, nested, JSON-safe data.

Nested structure is kept (dicts, ``argparse.Namespace``, dataclasses, OmegaConf
containers), a flat dotted view is derived for tables, secret-looking string values are
redacted, and anything we cannot represent is stored as its ``repr`` with one warning.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from lightning_tracker.storage.urls import redact_url

__all__ = ["REDACTED", "diff_flat", "flatten", "is_secret_key", "merge", "to_plain"]

log = logging.getLogger(__name__)

REDACTED = "***REDACTED***"
_SECRET_WORDS = {
    "key", "apikey", "secret", "token", "password", "passwd", "pwd", "passphrase",
    "credential", "credentials", "auth", "authorization", "cookie", "signature", "sas",
    "dsn",
}  # fmt: skip
_WORD_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_MAX_DEPTH = 64


def is_secret_key(key: str) -> bool:
    """Whether a key name looks like it holds a secret.

    Example:
        >>> is_secret_key("api_key"), is_secret_key("AWS_SECRET_ACCESS_KEY"), is_secret_key("lr")
        (True, True, False)
        >>> is_secret_key("hf-Token"), is_secret_key("api_keys"), is_secret_key("steps")
        (True, True, False)
    """
    words = {w.lower() for w in _WORD_RE.findall(str(key))}
    words |= {w[:-1] for w in words if w.endswith("s")}  # plurals: api_keys, tokens
    return bool(words & _SECRET_WORDS)


def _is_omegaconf(obj: Any) -> bool:
    return type(obj).__module__.startswith("omegaconf")


def to_plain(obj: Any, warned: set[str] | None = None) -> Any:
    """Converts ``obj`` to nested dicts, lists, str, numbers, bool and None.

    Args:
        obj: a mapping, ``Namespace``, dataclass, OmegaConf container or plain value.
        warned: paths already warned about; a non-serializable value warns once per path.

    Returns:
        JSON-compatible data with the same nesting; secret-looking string values under
        secret-looking keys are replaced by ``"***REDACTED***"``.

    Example:
        >>> from argparse import Namespace
        >>> to_plain(Namespace(lr=0.1, optim={"name": "adam", "api_key": "s3cr3t"}))
        {'lr': 0.1, 'optim': {'name': 'adam', 'api_key': '***REDACTED***'}}
    """
    return _plain(obj, "", warned if warned is not None else set(), set(), 0)


def _plain(obj: Any, path: str, warned: set[str], stack: set[int], depth: int) -> Any:
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return redact_url(obj) if "://" in obj and "@" in obj else obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, bytes):
        try:
            return obj.decode("utf-8")
        except UnicodeDecodeError:
            return repr(obj)
    if depth >= _MAX_DEPTH:
        return _as_repr(obj, path, warned, f"nested deeper than {_MAX_DEPTH} levels")
    # numpy / torch scalars and arrays
    tolist = getattr(obj, "tolist", None)
    if callable(tolist) and type(obj).__module__.split(".")[0] in ("numpy", "torch"):
        try:
            value = obj.detach().cpu().tolist() if hasattr(obj, "detach") else tolist()
            return _plain(value, path, warned, stack, depth + 1)
        except Exception:  # noqa: BLE001 - falls back to repr below
            pass
    if id(obj) in stack:
        return _as_repr(obj, path, warned, "it contains itself (a cycle)", use_repr=False)
    if isinstance(obj, Namespace):
        obj = vars(obj)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    elif _is_omegaconf(obj):
        from omegaconf import OmegaConf  # only when the user already has it

        try:
            obj = OmegaConf.to_container(obj, resolve=True)
        except Exception:  # noqa: BLE001 - unresolvable interpolation
            obj = OmegaConf.to_container(obj, resolve=False)
    stack = stack | {id(obj)}
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            name = key if isinstance(key, str) else str(key)
            sub = f"{path}.{name}" if path else name
            if is_secret_key(name) and _secret_value(value):
                out[name] = REDACTED
            elif is_secret_key(name) and isinstance(value, Mapping):
                out[name] = _redact_strings(_plain(value, sub, warned, stack, depth + 1))
            else:
                out[name] = _plain(value, sub, warned, stack, depth + 1)
        return out
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{path}[{i}]", warned, stack, depth + 1) for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [_plain(v, f"{path}[]", warned, stack, depth + 1) for v in obj]
        return sorted(items, key=repr)
    if isinstance(obj, type) or callable(obj):
        name = getattr(obj, "__qualname__", None) or repr(obj)
        return f"{getattr(obj, '__module__', '') or ''}.{name}".lstrip(".")
    return _as_repr(obj, path, warned, f"{type(obj).__name__} is not JSON-serializable")


def _redact_strings(value: Any) -> Any:
    """Every string below a secret-looking key (``credentials: {id: ..., value: ...}``)."""
    if isinstance(value, dict):
        return {k: _redact_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_strings(v) for v in value]
    return REDACTED if isinstance(value, str) and value else value


def _secret_value(value: Any) -> bool:
    """Strings (or lists of strings) can be secrets; numbers such as ``key_dim`` cannot."""
    if isinstance(value, (str, bytes)):
        return bool(value)
    if isinstance(value, (list, tuple)) and value:
        return all(isinstance(v, (str, bytes)) for v in value)
    return False


def _as_repr(obj: Any, path: str, warned: set[str], why: str, use_repr: bool = True) -> str:
    if path not in warned:
        warned.add(path)
        log.warning("hyperparameter %r stored as its repr: %s", path or "<root>", why)
    if not use_repr:
        return f"<cycle: {type(obj).__name__}>"
    try:
        return repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not stop training
        return f"<unrepresentable {type(obj).__name__}>"


def flatten(nested: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """The flat dotted view of nested hyperparameters (lists stay values).

    Example:
        >>> flatten({"model": {"width": 64, "act": "relu"}, "lr": 0.1})
        {'model.width': 64, 'model.act': 'relu', 'lr': 0.1}
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(f"{prefix}{sep}{k}" if prefix else str(k), v)
        else:
            out[prefix] = value

    for key, value in nested.items():
        walk(str(key), value)
    return out


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merges ``update`` into a copy of ``base``.

    Example:
        >>> merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}, "b": 4})
        {'a': {'x': 1, 'y': 3}, 'b': 4}
    """
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def diff_flat(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Keys whose value changed or appeared, as ``{key: [old, new]}``.

    Example:
        >>> diff_flat({"lr": 0.1, "bs": 32}, {"lr": 0.01, "bs": 32, "wd": 0.0})
        {'lr': [0.1, 0.01], 'wd': [None, 0.0]}
    """
    return {k: [old.get(k), v] for k, v in new.items() if k not in old or not _same(old[k], v)}
