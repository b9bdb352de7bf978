"""The one query grammar: ``lr<0.01``, ``val/acc>=0.9``, ``tags=baseline``, ``adam``.

``Store.runs(where=...)``, the CLI's ``--where`` and the report's filter box all use it;
the report runs ``report/assets/query.js``, a twin of this module that ``tests/format/test_query.py``
checks case by case (errors and their messages included) against this one.

A query is terms combined with ``AND``, ``OR``, ``NOT`` and parentheses:
``lr<0.01 (optimizer=adam OR optimizer=sgd) NOT tags=broken``. Terms side by side must all
hold (``AND`` may be written or left out); ``OR`` binds looser than ``AND``, ``NOT`` tighter;
the keywords are upper case (quote one to search for the word: ``"OR"``). A list of
strings (``--where`` given twice) is a query per item, all of which must hold; an item
without keywords or parentheses is one term, spaces and all (``notes=first try``).
Whitespace splits terms outside double quotes, except around an operator
(``lr < 0.01`` is ``lr<0.01``); parentheses outside quotes group, so text holding one is
quoted (``name="run (2)"``). A term is ``KEY OP VALUE`` (OP one of
``<= >= != == = < >``, the first operator after the key) or a bare word: a
case-insensitive substring of the id, name, project, group, status or a tag.

- VALUE is JSON when it parses as JSON (``0.01``, ``true``, ``null``, ``"quoted text"``),
  else text. A list or object (value or field) compares as its JSON text.
- KEY is ``config.K``/``params.K`` (a hyperparameter), ``summary.K`` (a metric's last
  value), ``min.K``/``max.K`` (its smallest and largest value, NaN ignored), one of
  :data:`FIELDS`, or a bare ``K``: the hyperparameter ``K`` if any of the
  runs queried has one, else the metric ``K``
  (:func:`~lightning_tracker.format.keys.locate`, the rule the CLI's ``--sort`` and
  ``--columns`` and the page's columns follow too). The set decides, not each run: where
  one run has the hyperparameter ``lr``, ``lr`` is the hyperparameter for every run and
  the metric is ``summary.lr`` (:meth:`Query.select`, :func:`scope`). A run without the
  key fails the term.
- Numbers (not booleans) compare numerically; text with text exactly, ordered by code
  point; anything else is unequal and unordered. NaN fails every comparison but ``!=``.
- ``tags=x``: x is one of the tags; ``tags!=x``: it is not.
- ``NOT`` negates what follows: a run without the key fails ``lr=0.1`` and ``lr!=0.1``
  but matches ``NOT lr=0.1``.
"""

from __future__ import annotations

import difflib
import json
import numbers
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, KeysView, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightning_tracker.exceptions import InvalidArgumentError
from lightning_tracker.format.keys import EXTREMES, FIELDS, PREFIXES, locate

__all__ = [
    "FIELDS",
    "KEYWORDS",
    "MISSING",
    "AllOf",
    "AnyOf",
    "Not",
    "Query",
    "Scope",
    "Term",
    "check_keys",
    "known_keys",
    "parse",
    "resolve",
    "scope",
    "split",
]

SEARCHED = ("id", "name", "project", "group", "status", "tags")  # what a bare word looks in
OPERATORS = ("<=", ">=", "!=", "==", "=", "<", ">")  # two-character ones first: longest match wins
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
_SWAPPED = {"=<": "<=", "=>": ">=", "=!": "!="}  # operators typed the wrong way round
KEYWORDS = ("AND", "OR", "NOT")
_GROUP_EXAMPLE = "(lr<0.01 OR lr>0.1)"
_KEYWORD_FIX = {
    "AND": "write TERM AND TERM, e.g. 'lr<0.01 AND optimizer=adam'",
    "OR": "write TERM OR TERM, e.g. 'lr<0.01 OR lr>0.1'",
    "NOT": "write NOT TERM, e.g. 'NOT tags=baseline'",
}


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What :func:`resolve` returns for a key the record does not have."""

Scope = tuple[Collection[str], Collection[str]]
"""The hyperparameter and the metric names of the runs queried (see :func:`scope`)."""


@dataclass(frozen=True)
class Term:
    """One term: ``key``/``op``/``value`` of a comparison, or ``word`` (lower case) of a search."""

    text: str
    key: str | None = None
    op: str | None = None
    value: Any = None
    word: str | None = None

    def matches(self, record: Mapping[str, Any], among: Scope | None = None) -> bool:
        """Whether the term holds for one run record of the runs ``among`` names (see :func:`resolve`)."""
        if self.key is None:
            found = [record.get(f) for f in SEARCHED]
            texts = [t for f in found for t in (f if isinstance(f, list) else [f]) if t is not None]
            return any(str(self.word) in str(t).lower() for t in texts)
        field = resolve(record, self.key, among)
        if field is MISSING:
            return False
        if self.key == "tags" and isinstance(field, list):
            return any(_equal(_text(t), self.value) for t in field) == (self.op != "!=")
        return _compare(_text(field), self.op or "=", self.value)


@dataclass(frozen=True)
class Not:
    """``NOT part``: holds where ``part`` does not."""

    part: Node

    def matches(self, record: Mapping[str, Any], among: Scope | None = None) -> bool:
        """Whether ``part`` fails for ``record``."""
        return not self.part.matches(record, among)


@dataclass(frozen=True)
class AllOf:
    """Parts that must all hold (terms side by side, or joined by ``AND``)."""

    parts: tuple[Node, ...]

    def matches(self, record: Mapping[str, Any], among: Scope | None = None) -> bool:
        """Whether every part holds for ``record``."""
        return all(p.matches(record, among) for p in self.parts)


@dataclass(frozen=True)
class AnyOf:
    """Parts joined by ``OR``: one must hold."""

    parts: tuple[Node, ...]

    def matches(self, record: Mapping[str, Any], among: Scope | None = None) -> bool:
        """Whether some part holds for ``record``."""
        return any(p.matches(record, among) for p in self.parts)


Node = Term | Not | AllOf | AnyOf


@dataclass(frozen=True)
class Query:
    """A parsed query; build one with :func:`parse`.

    Attributes:
        terms: every term, in the order written.
        tree: how the terms combine; None: all of ``terms`` must hold.
    """

    terms: tuple[Term, ...] = ()
    tree: Node | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys the comparisons name, in order, each once."""
        return tuple(dict.fromkeys(t.key for t in self.terms if t.key is not None))

    def matches(self, record: Mapping[str, Any], among: Scope | None = None) -> bool:
        """Whether the query holds for ``record`` (``{id, name, ..., params, summary, min, max}``).

        ``among`` is the :func:`scope` of the runs queried, which decides what a bare key
        names; None queries ``record`` alone. To filter runs, :meth:`select` them.

        Example:
            >>> run = {"name": "a", "tags": ["x"], "params": {"lr": 0.01}, "summary": {"val/acc": 0.93}}
            >>> parse("lr<0.05 val/acc>=0.9 tags=x").matches(run), parse("lr>0.05").matches(run)
            (True, False)
            >>> parse("lr>0.05 OR (tags=x NOT val/acc<0.9)").matches(run), parse("NOT tags=x").matches(run)
            (True, False)
        """
        if self.tree is None:
            return all(t.matches(record, among) for t in self.terms)
        return self.tree.matches(record, among)

    def select(self, records: Sequence[Mapping[str, Any]]) -> list[bool]:
        """Whether each of ``records`` matches, a bare key decided over all of them (:func:`scope`).

        Example:
            >>> a = {"name": "a", "params": {"lr": 0.5}, "summary": {}}
            >>> b = {"name": "b", "params": {}, "summary": {"lr": 0.001}}
            >>> parse("lr<0.01").select([a, b]), parse("summary.lr<0.01").select([a, b])
            ([False, False], [False, True])
            >>> parse("lr<0.01").select([b]), parse("lr<0.01").matches(b)
            ([True], True)
        """
        among = scope(records)
        return [self.matches(record, among) for record in records]


def split(text: str) -> list[str]:
    """Splits ``text`` into terms at whitespace outside double quotes (quotes are kept).

    Example:
        >>> split('lr<0.01  name="my run"')
        ['lr<0.01', 'name="my run"']
    """
    terms, current = [], ""
    for _at, ch, outside in _outside_quotes(text):
        if outside and ch.isspace():
            if current:
                terms.append(current)
            current = ""
            continue
        current += ch
    if current:
        terms.append(current)
    return terms


def parse(terms: str | Sequence[str]) -> Query:
    """A query from a string, or from a list of strings that must all hold.

    Raises:
        InvalidArgumentError: a term has no key or no value, a value that starts with an
            operator, or orders (``<``) by something that is neither a number nor quoted
            text; a keyword has nothing to join; a parenthesis is unmatched, empty or
            inside a term.

    Example:
        >>> parse(["lr < 0.01", "optimizer=adam OR optimizer=sgd"]).keys
        ('lr', 'optimizer')
        >>> parse("lr=<0.01")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.InvalidArgumentError: where term 'lr=<0.01' has a value ... e.g. 'lr<=0.01'
        >>> parse("lr<0.01 OR")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.InvalidArgumentError: where query 'lr<0.01 OR' has nothing after 'OR'; ...
    """
    if isinstance(terms, str):
        items = [terms]
    else:
        items = list(terms)
        for item in items:
            if not isinstance(item, str):
                raise InvalidArgumentError(
                    f"where term {item!r} is not text; pass strings such as ['lr<0.01', 'optimizer=adam']"
                )
    found: list[Term] = []
    parts: list[Node] = []
    for item in (i.strip() for i in items):
        if item and not isinstance(terms, str) and _one_term(item):
            term = _term(item)
            found.append(term)
            parts.append(term)
        elif item:
            tree = _Parser(item, found).parse()
            parts.extend([tree] if tree is not None else [])
    if all(isinstance(p, Term) for p in parts):
        return Query(tuple(found))
    return Query(tuple(found), parts[0] if len(parts) == 1 else AllOf(tuple(parts)))


def _one_term(item: str) -> bool:
    """A list item without keywords or parentheses is one term, spaces and all (``name=my run``)."""
    return not any(piece in KEYWORDS for piece in split(item)) and _find_outside(item, ("(", ")"))[1] is None


def _tokens(text: str) -> list[str]:
    """``text`` as terms, keywords and parentheses: split at whitespace and parentheses outside
    double quotes (quotes kept), then a comparison spread over whitespace joined again."""
    pieces: list[str] = []
    current = ""

    def fail(problem: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"where query '{text}' {problem}; quote text that holds one, e.g. 'name=\"run (2)\"'"
        )

    for at, ch, outside in _outside_quotes(text):
        if outside and (ch.isspace() or ch in "()"):
            if ch == "(" and current:
                raise fail(f"has a '(' inside the term '{current}('")
            if ch == ")" and at + 1 < len(text) and not (text[at + 1].isspace() or text[at + 1] in "()"):
                raise fail("has a ')' inside a term")
            if current:
                pieces.append(current)
            if not ch.isspace():
                pieces.append(ch)
            current = ""
            continue
        current += ch
    if current:
        pieces.append(current)
    tokens: list[str] = []
    for piece in pieces:
        last = tokens[-1] if tokens else None
        if last is not None and _term_text(last) and _term_text(piece) and _joins(last, piece):
            tokens[-1] = last + piece
        else:
            tokens.append(piece)
    return tokens


def _term_text(token: str) -> bool:
    return token not in KEYWORDS and token not in ("(", ")")


def _joins(last: str, piece: str) -> bool:
    """Whether ``piece`` continues the comparison ``last``: ``lr`` ``<`` ``0.01``."""
    at, op = _find_operator(last)
    if op is None:
        return _find_operator(piece)[0] == 0
    return not last[at + len(op) :].strip()


class _Parser:
    """``OR`` of ``AND`` of (``NOT``) terms and groups, over the tokens of one query text."""

    def __init__(self, text: str, found: list[Term]) -> None:
        self.text, self.found, self.tokens, self.at = text, found, _tokens(text), 0

    def fail(self, problem: str, fix: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"where query '{self.text}' {problem}; {fix}")

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def parse(self) -> Node | None:
        if not self.tokens:
            return None
        node = self.any_of()
        if self.peek() is not None:  # only a ')' stops any_of early
            raise self.fail("closes a ')' it did not open", f"open it or remove it, e.g. '{_GROUP_EXAMPLE}'")
        return node

    def any_of(self) -> Node:
        parts = [self.all_of()]
        while self.peek() == "OR":
            self.at += 1
            parts.append(self.all_of())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def all_of(self) -> Node:
        parts = [self.one()]
        while self.peek() not in (None, ")", "OR"):
            if self.peek() == "AND":
                self.at += 1
            parts.append(self.one())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def one(self) -> Node:
        token, before = self.peek(), self.tokens[self.at - 1] if self.at else None
        if token is None or token in (")", "AND", "OR"):
            if before in KEYWORDS:
                raise self.fail(f"has nothing after '{before}'", _KEYWORD_FIX[str(before)])
            if token in ("AND", "OR"):
                raise self.fail(f"has nothing before '{token}'", _KEYWORD_FIX[str(token)])
            if token == ")" and before == "(":
                raise self.fail("has empty parentheses", f"put terms inside, e.g. '{_GROUP_EXAMPLE}'")
            if token == ")":
                raise self.fail("closes a ')' it did not open", f"open it or remove it, e.g. '{_GROUP_EXAMPLE}'")
            raise self.fail("opens a '(' it does not close", f"close it, e.g. '{_GROUP_EXAMPLE}'")
        self.at += 1
        if token == "NOT":
            return Not(self.one())
        if token == "(":
            node = self.any_of()
            if self.peek() != ")":
                raise self.fail("opens a '(' it does not close", f"close it, e.g. '{_GROUP_EXAMPLE}'")
            self.at += 1
            return node
        term = _term(token)
        self.found.append(term)
        return term


def _term(text: str) -> Term:
    at, op = _find_operator(text)
    if op is None:
        word = _json(text)
        return Term(text, word=(word if isinstance(word, str) else text).lower())
    key, raw = text[:at].strip(), text[at + len(op) :].strip()

    def fail(problem: str, fix: str, example: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"where term '{text}'{problem}; {fix}, e.g. '{example}'")

    if not key:
        raise fail(f" has no key before '{op}'", "write KEY OP VALUE", f"lr{op}{raw or '0.01'}")
    if not raw:
        raise fail(f" has no value after '{op}'", "write KEY OP VALUE", f"{key}{op}0.01")
    if raw[0] in "<>=!":
        rest = raw.lstrip("<>=!").strip() or "0.01"
        example = f"{key}{_SWAPPED.get(op + raw[0], op)}{rest}"
        raise fail(f" has a value that starts with '{raw[0]}'", "write one operator between key and value", example)
    value = _json(raw)
    quoted = isinstance(value, str)
    value = raw if value is MISSING else _text(value)
    if op in _ORDER and key == "tags":
        raise fail(f" orders tags with '{op}'", "tags takes = (one of the tags) or != (none of them)", "tags=baseline")
    if op in _ORDER and not (_is_number(value) or quoted):
        raise fail(f": '{op}' compares numbers", "write a number, or quote text as JSON", f"{key}{op}0.01")
    return Term(text, key=key, op="=" if op == "==" else op, value=value)


def _find_operator(text: str) -> tuple[int, str | None]:
    """The first operator outside double quotes (so ``"lr=0.1"`` is a word to search)."""
    return _find_outside(text, OPERATORS)


def _find_outside(text: str, targets: Sequence[str]) -> tuple[int, str | None]:
    """The first of ``targets`` outside double quotes (the first listed wins at one place), and where."""
    for at, _ch, outside in _outside_quotes(text):
        if outside:
            found = next((t for t in targets if text.startswith(t, at)), None)
            if found is not None:
                return at, found
    return -1, None


def _outside_quotes(text: str) -> Iterator[tuple[int, str, bool]]:
    """Each character of ``text``, where it stands, and whether it stands outside double quotes.

    A ``"`` opens quoted text that the next ``"`` not escaped by a backslash closes (JSON's
    rule); the quotes themselves count as inside.

    Example:
        >>> "".join(ch for _, ch, outside in _outside_quotes(r'a"b \\" c"d') if outside)
        'ad'
    """
    quoted = escaped = False
    for at, ch in enumerate(text):
        if quoted:
            quoted = escaped or ch != '"'
            escaped = not escaped and ch == "\\"
            yield at, ch, False
        elif ch == '"':
            quoted = True
            yield at, ch, False
        else:
            yield at, ch, True


def _json(raw: str) -> Any:
    """JSON as JavaScript's ``JSON.parse`` reads it (no NaN or Infinity), or MISSING."""

    def reject(name: str) -> Any:
        raise ValueError(name)

    try:
        return json.loads(raw, parse_constant=reject)
    except ValueError:
        return MISSING


def _text(value: Any) -> Any:
    """A list or object as its JSON text (the report's payload carries them so); others as they are."""
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return "number" if _is_number(value) else "text" if isinstance(value, str) else "other"


def _equal(a: Any, b: Any) -> bool:
    return _kind(a) == _kind(b) and a == b  # NaN == NaN is False, as wanted


def _compare(field: Any, op: str, value: Any) -> bool:
    if op == "=":
        return _equal(field, value)
    if op == "!=":
        return not _equal(field, value)
    both = _kind(field) == _kind(value) and _kind(value) in ("number", "text")
    return both and _ORDER[op](field, value)  # NaN orders False


def scope(records: Iterable[Mapping[str, Any]]) -> tuple[KeysView[str], KeysView[str]]:
    """The hyperparameter and the metric names of a set of run records: what a bare key is decided over.

    Each name once, in the order the records first name it (a view: membership is a lookup).

    Example:
        >>> [list(names) for names in scope([{"params": {"lr": 0.5}}, {"summary": {"loss": 1.0, "lr": 0.001}}])]
        [['lr'], ['loss', 'lr']]
    """
    params: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for record in records:
        params.update(dict.fromkeys(record.get("params") or {}))
        metrics.update(dict.fromkeys(record.get("summary") or {}))
    return params.keys(), metrics.keys()


def resolve(record: Mapping[str, Any], key: str, among: Scope | None = None) -> Any:
    """The value ``key`` names in a run record, or :data:`MISSING`.

    ``among`` is the :func:`scope` of the runs queried (None: ``record`` alone): a bare
    key names the hyperparameter when any of them has it, so a record without it has
    no value even when it has a metric of that name (``summary.K`` names that).

    Example:
        >>> run = {"name": "a", "params": {"lr": 0.1}, "summary": {"lr": 0.09, "val/acc": 0.9}}
        >>> resolve(run, "lr"), resolve(run, "summary.lr"), resolve(run, "val/acc"), resolve(run, "x")
        (0.1, 0.09, 0.9, MISSING)
        >>> logged = {"name": "b", "params": {}, "summary": {"lr": 0.001}}
        >>> resolve(logged, "lr"), resolve(logged, "lr", scope([run, logged])), resolve(logged, "summary.lr")
        (0.001, MISSING, 0.001)
        >>> resolve({"summary": {"loss": 0.5}, "min": {"loss": 0.1}, "max": {"loss": 2.0}}, "min.loss")
        0.1
    """
    sections = {section: record.get(section) or {} for section in ("params", "summary", "min", "max")}
    params, metrics = (sections["params"], sections["summary"]) if among is None else among
    found = locate(key, params, metrics)
    if found is None:
        return MISSING
    section, name = found
    return record.get(name, MISSING) if section == "field" else sections[section].get(name, MISSING)


def known_keys(records: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every key that names something in at least one record: fields, names and their spellings.

    Example:
        >>> sorted(known_keys([{"params": {"lr": 0.1}, "summary": {"loss": 1.0}}]) - set(FIELDS))
        ['config.lr', 'loss', 'lr', 'max.loss', 'min.loss', 'params.lr', 'summary.loss']
    """
    known = set(FIELDS)
    for record in records:
        for name in record.get("params") or {}:
            known.update((name, f"config.{name}", f"params.{name}"))
        for name in record.get("summary") or {}:
            known.update((name, f"summary.{name}", f"min.{name}", f"max.{name}"))
    return known


def check_keys(query: Query, known: Iterable[str]) -> None:
    """Raises for a key of ``query`` that is not in ``known`` (see :func:`known_keys`).

    Raises:
        InvalidArgumentError: naming the key and the closest known keys.

    Example:
        >>> check_keys(parse("lrr<0.01"), known_keys([{"params": {"lr": 0.1}}]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lightning_tracker.exceptions.InvalidArgumentError: ... names 'lrr', which no run has; did you mean 'lr'?
    """
    names = set(known)
    for term in query.terms:
        if term.key is None or term.key in names:
            continue
        close = difflib.get_close_matches(term.key, sorted(names), n=3, cutoff=0.6)
        if close:
            hint = "did you mean " + " or ".join(f"'{k}'" for k in close) + "?"
        else:
            plain = [k for k in sorted(names) if not k.startswith(tuple(p for p, _ in (*PREFIXES, *EXTREMES)))]
            hint = "known keys are " + ", ".join(plain[:12]) + (" …" if len(plain) > 12 else "")
        raise InvalidArgumentError(f"where term '{term.text}' names '{term.key}', which no run has; {hint}")
