"""Hyperparameters: turn whatever the user logs into plain, nested, JSON-safe data.

Nested structure is kept (dicts, ``argparse.Namespace``, dataclasses, OmegaConf
containers), a flat dotted view is derived for tables, string values under secret-looking
keys are redacted, and so is any secret-shaped part of any string (a connection string's
``AccountKey=``, a token, a webhook URL: :mod:`lightning_tracker.format.secrets`), and
anything we cannot represent is stored as its ``repr`` with one warning.
"""

from __future__ import annotations

import copy as copy_module
import dataclasses
import logging
import math
import os
import re
from argparse import Namespace
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from lightning_tracker.format.secrets import REDACTED
from lightning_tracker.storage.urls import redact_url

__all__ = ["REDACTED", "diff_flat", "flatten", "is_secret_key", "merge", "redact_secrets", "to_plain"]

log = logging.getLogger(__name__)

_SECRET_WORDS = {
    "key", "apikey", "secret", "token", "password", "passwd", "pwd", "passphrase",
    "credential", "credentials", "auth", "authorization", "cookie", "signature", "sas",
    "dsn", "bearer", "jwt", "webhook", "connectionstring", "connstr",
}  # fmt: skip
# words too common inside other names to count anywhere, but a secret as a key's last word:
# db_pass, smtp_pw, private (a private key), not pass_rate or private_dataset
_LAST_WORDS = {"pass", "pw", "private"}
# two words that name a secret together (connection_string, conn_str), not alone
_PAIRS = {("connection", "string"), ("conn", "str"), ("conn", "string")}
# secret words that also end a one-word key (dbpassword, hftoken, clientsecret); "key", "sas"
# and "auth" do not (monkey, kansas, oauth), and a word merely starting with one is no
# secret (tokenizer, secretary, author)
_SECRET_ENDINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "credentials",
    "apikey",
    "pwd",
    "cookie",
    "signature",
    "dsn",
    "webhook",
    "jwt",
    "connectionstring",
)
# "<qualifier>key" as one word is a secret (secretkey, privatekey); other words ending in key are not
_KEY_QUALIFIERS = {
    "api", "secret", "private", "access", "auth", "client", "pass", "master", "signing", "encryption",
    "session", "account", "ssh", "hmac", "license", "storage", "service", "shared", "sas",
}  # fmt: skip
# tokenizer vocabulary, not credentials: pad_token, eos_token, mask_token ...
_VOCAB_ROLES = {"pad", "eos", "bos", "unk", "sep", "cls", "mask", "start", "end", "special"}
_WORD_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_ENV_RE = re.compile(r"\$\{\s*(?:oc\.)?env\s*:\s*([^,}\s]+)")  # OmegaConf's oc.env (and the old env)
_MAX_DEPTH = 64


def _secret_word(word: str) -> bool:
    if word in _SECRET_WORDS:
        return True
    if word.endswith("key"):
        return word[:-3] in _KEY_QUALIFIERS
    if word.endswith("token"):
        return word[:-5] not in _VOCAB_ROLES  # padtoken is vocabulary
    return word.endswith(_SECRET_ENDINGS)


def is_secret_key(key: str) -> bool:
    """Whether a key name looks like it holds a secret.

    Keys are split into lowercase words (at non-letters, camelCase and digits). A word is
    secret when it is a secret word (``key``, ``token``, ``password`` ...), when it ends
    with one of the unambiguous ones (``dbpassword``, ``hftoken``), or when it is
    ``<qualifier>key`` (``secretkey``, ``privatekey``, not ``monkey``). A ``token`` after a
    tokenizer role (``pad_token``, ``eos_token``) is vocabulary, not a credential.

    Example:
        >>> is_secret_key("api_key"), is_secret_key("AWS_SECRET_ACCESS_KEY"), is_secret_key("lr")
        (True, True, False)
        >>> is_secret_key("hf-Token"), is_secret_key("api_keys"), is_secret_key("steps")
        (True, True, False)
        >>> [is_secret_key(k) for k in ("dbpassword", "hftoken", "secretkey", "keyboard", "monkey", "tokenizer")]
        [True, True, True, False, False, False]
        >>> [is_secret_key(k) for k in ("connection_string", "db_pass", "pw", "private", "slack_webhook", "jwt")]
        [True, True, True, True, True, True]
        >>> [is_secret_key(k) for k in ("pass_rate", "private_dataset", "connection_timeout", "bypass")]
        [False, False, False, False]
    """
    words = [w.lower() for w in _WORD_RE.findall(str(key))]
    if words and words[-1] in _LAST_WORDS:
        return True
    for prev, word in zip(["", *words], words, strict=False):
        if (prev, word) in _PAIRS:
            return True
        for w in (word, word[:-1]) if word.endswith("s") else (word,):  # plurals: api_keys, tokens
            if not (w == "token" and prev in _VOCAB_ROLES) and _secret_word(w):
                return True
    return False


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
        return redact_url(obj)  # credentials in a URL, and secret-shaped values under any key
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, PurePath):  # a data or output folder: its path, as the user wrote it
        return str(obj)
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
        obj = _omegaconf_level(obj, path, warned)
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


def _omegaconf_level(obj: Any, path: str, warned: set[str]) -> Any:
    """One level of an OmegaConf container as a dict or list, each value resolved on its own.

    Child containers stay OmegaConf objects (resolved level by level as the walk reaches
    them). An interpolation that reads the environment (``${oc.env:HF_TOKEN}``), or whose
    resolved text contains a value read that way, is kept as written; one that cannot be
    resolved is kept as written with a warning; ``???`` (missing) stays ``???``.
    """
    from omegaconf import DictConfig, OmegaConf  # only when the user already has it

    try:
        raw: Any = OmegaConf.to_container(obj, resolve=False)
    except Exception:  # noqa: BLE001 - a container OmegaConf itself cannot read (a None config)
        return None
    keys = list(raw) if isinstance(obj, DictConfig) else range(len(raw))
    out: Any = [None] * len(raw) if isinstance(raw, list) else {}
    for key in keys:
        text = raw[key]
        if OmegaConf.is_missing(obj, key) or (OmegaConf.is_interpolation(obj, key) and _ENV_RE.search(str(text))):
            out[key] = text
            continue
        try:
            value = obj[key]
        except Exception as err:  # noqa: BLE001 - one unresolvable interpolation leaves the others resolved
            where = f"{path}[{key}]" if isinstance(raw, list) else f"{path}.{key}" if path else str(key)
            if where not in warned:
                warned.add(where)
                log.warning(
                    "hyperparameter %r: %s cannot be resolved (%s); stored as written",
                    where,
                    text,
                    (str(err).splitlines() or [""])[0],
                )
            value = text
        if isinstance(value, str) and value != text and _reads_environment(obj, value):
            value = text  # ${token} where token is ${oc.env:HF_TOKEN}
        out[key] = value
    return out


def _reads_environment(node: Any, value: str) -> bool:
    """Whether ``value`` contains the value of an environment variable that ``node``'s config
    reads with ``oc.env`` (values shorter than 4 characters, such as ``WORLD_SIZE``, are ignored)."""
    from omegaconf import OmegaConf

    root = node._get_root() if hasattr(node, "_get_root") else node  # the whole config interpolates
    names: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            for v in item.values():
                walk(v)
        elif isinstance(item, list):
            for v in item:
                walk(v)
        elif isinstance(item, str) and "env" in item:
            names.extend(_ENV_RE.findall(item))

    walk(OmegaConf.to_container(root, resolve=False))
    return any(len(env) >= 4 and env in value for env in (os.environ.get(n, "") for n in names))


def redact_secrets(obj: Any, _depth: int = 0) -> Any:
    """``obj`` with the values :func:`to_plain` would redact replaced, its types kept
    (dicts, ``AttributeDict``, ``Namespace``, dataclasses, lists, tuples, OmegaConf); ``obj``
    itself when nothing needs redacting. For objects such as a checkpoint's ``hyper_parameters``
    that must still load.

    Example:
        >>> from argparse import Namespace
        >>> redact_secrets(Namespace(lr=0.1, db={"password": "hunter2"}))
        Namespace(lr=0.1, db={'password': '***REDACTED***'})
        >>> params = {"lr": 0.1}
        >>> redact_secrets(params) is params
        True
    """
    if isinstance(obj, str):
        red = redact_url(obj)
        return obj if red == obj else red
    if _depth >= _MAX_DEPTH or isinstance(obj, (bytes, int, float, type(None))):
        return obj
    if _is_omegaconf(obj):
        from omegaconf import OmegaConf

        raw = OmegaConf.to_container(obj, resolve=False)
        red = redact_secrets(raw, _depth + 1)
        return obj if red is raw else OmegaConf.create(red)
    if isinstance(obj, Namespace):
        red = redact_secrets(vars(obj), _depth + 1)
        return obj if red is vars(obj) else Namespace(**red)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        red = redact_secrets(fields, _depth + 1)
        if red is fields:
            return obj
        copy = copy_module.copy(obj)
        for name, value in red.items():
            object.__setattr__(copy, name, value)  # frozen dataclasses too
        return copy
    if isinstance(obj, Mapping):
        changed = {}
        for key, value in obj.items():
            secret = is_secret_key(str(key))
            if secret and _secret_value(value):
                changed[key] = REDACTED
            elif secret and isinstance(value, Mapping):
                red = _redact_strings(redact_secrets(value, _depth + 1))
                if red is not value:
                    changed[key] = red
            else:
                red = redact_secrets(value, _depth + 1)
                if red is not value:
                    changed[key] = red
        if not changed:
            return obj
        out = copy_module.copy(obj) if isinstance(obj, dict) else dict(obj)
        out.update(changed)
        return out
    if isinstance(obj, (list, tuple)):
        items = [redact_secrets(v, _depth + 1) for v in obj]
        if all(a is b for a, b in zip(items, obj, strict=True)):
            return obj
        if isinstance(obj, list):
            return items
        return getattr(obj, "_make")(items) if hasattr(obj, "_make") else tuple(items)  # noqa: B009 - a namedtuple
    return obj


def _redact_strings(value: Any) -> Any:
    """Every string below a secret-looking key (``credentials: {id: ..., value: ...}``);
    ``value`` itself when it holds none."""
    if isinstance(value, dict):
        items = {k: _redact_strings(v) for k, v in value.items()}
        return value if all(items[k] is v for k, v in value.items()) else items
    if isinstance(value, list):
        seq = [_redact_strings(v) for v in value]
        return value if all(a is b for a, b in zip(seq, value, strict=True)) else seq
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

    Two paths can join to one name (``{"a.b": 1, "a": {"b": 2}}``): the path with fewer
    parts (the key written with the dot) keeps the name, the others are named
    ``<name>~1``, ``<name>~2`` … in the order they appear, so no value is lost.

    Example:
        >>> flatten({"model": {"width": 64, "act": "relu"}, "lr": 0.1})
        {'model.width': 64, 'model.act': 'relu', 'lr': 0.1}
        >>> flatten({"a": {"b": 2}, "a.b": 1})
        {'a.b~1': 2, 'a.b': 1}
    """
    paths: list[tuple[str, int, Any]] = []  # (joined name, number of parts, value)

    def walk(prefix: str, parts: int, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(f"{prefix}{sep}{k}", parts + 1, v)
        else:
            paths.append((prefix, parts, value))

    for key, value in nested.items():
        walk(str(key), 1, value)
    names = [name for name, _, _ in paths]
    if len(set(names)) == len(names):
        return {name: value for name, _, value in paths}
    winner: dict[str, int] = {}  # name -> index of the path that keeps it
    for i, (name, parts, _) in enumerate(paths):
        if name not in winner or parts < paths[winner[name]][1]:
            winner[name] = i
    taken, out = set(names), {}
    for i, (name, _, value) in enumerate(paths):
        if winner[name] != i:
            n = 1
            while f"{name}~{n}" in taken:
                n += 1
            name = f"{name}~{n}"
            taken.add(name)
        out[name] = value
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
