"""Bad input, swept: property tests that throw random and broken input at every parser.

What is swept, each with at least 500 derandomized examples per target:

* ``space.parse`` of every search space (:data:`SPACES`: every :class:`SearchSpace` of the
  package, some in two configurations) with fully random text, mutations of a valid string
  (characters and slices deleted, inserted, replaced, duplicated or cut off; tokens swapped
  or replaced with brackets, quotes, digits, huge numbers, the space's own op names,
  unicode) and strings assembled from the space's own tokens; and non-strings.
* ``space.from_params`` with valid params broken by one to four edits (a value replaced
  with another type, an unhashable, NaN, a huge int, a bool for an int, another decision's
  choice; keys dropped, added, or given the wrong prefix; a gating decision changed, so
  that the decisions it gates go missing or are given though inactive) and with fully
  random dicts; ``space.from_values`` with the same params, their prefix taken off; and
  non-mappings.
* :meth:`NasBench201Table.load` with generated CSV files: mutated cells (empty, text,
  NaN, infinities, bad architectures, quoting and unicode junk), rows with too few or too
  many fields, repeated rows, missing, renamed or reordered columns, empty and header-only
  files, binary garbage; and paths that are missing, folders or not paths at all.

The property is the same everywhere: the input is accepted and the result is consistent
(an architecture round-trips through its string and holds exactly the values given; a
table finds each of its rows), or the package raises its own error, a
:class:`~optuna_nas.errors.NasError` with a message, and a parse prints no warnings. Any
other exception (an ``IndexError``, ``KeyError``, ``TypeError``, ``RecursionError`` ... from
deep inside) fails the test, and the fix belongs in the parser, not here.
"""

from __future__ import annotations

import ast
import csv
import inspect
import io
import math
import random
import re
import warnings
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optuna_nas
import optuna_nas.autodeeplab as autodeeplab_module
import optuna_nas.spaces as spaces_module
from optuna_nas.autodeeplab import AutoDeepLabSpace
from optuna_nas.benchmarks import NasBench201Table
from optuna_nas.benchmarks._fcnet import FCNetArchSpace
from optuna_nas.benchmarks._nasbench201 import NUMERIC_COLUMNS
from optuna_nas.errors import ArchitectureError, NasError, TableError
from optuna_nas.spaces import (
    Architecture,
    DartsCells,
    DartsRecurrentSpace,
    NasBench201Space,
    NasNetCells,
    NasRLMacroSpace,
    NasRLRecurrentSpace,
    SearchSpace,
)

PACKAGE = Path(optuna_nas.__file__).resolve().parent

SWEEP = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Every space swept, by test id. Add a factory here for a new space;
#: ``test_every_space_of_the_package_is_swept`` fails until it is listed.
SPACES: dict[str, Callable[[], SearchSpace]] = {
    "nasbench201": NasBench201Space,
    "darts": DartsCells,
    "darts-steps2": lambda: DartsCells(steps=2),
    "nasnet": NasNetCells,  # DARTS' cells with free inputs, combines and concat="unused"
    "darts-recurrent": DartsRecurrentSpace,
    "nasrl-macro": lambda: NasRLMacroSpace(min_layers=2, max_layers=4, strides=True),
    "nasrl-recurrent": NasRLRecurrentSpace,
    "autodeeplab": lambda: AutoDeepLabSpace(layers=4, blocks=3),
    "fcnet": lambda: FCNetArchSpace({
        "activation_fn_1": ("relu", "tanh"), "activation_fn_2": ("relu", "tanh"),
        "n_units_1": (16.0, 512.0), "n_units_2": (16.0, 512.0),
        "dropout_1": (0.0, 0.3), "dropout_2": (0.0, 0.3),
    }),
}


@cache
def _space(name: str) -> SearchSpace:
    return SPACES[name]()


# ---- the list is complete --------------------------------------------------------------
def _space_classes_in_source() -> set[str]:
    """Names of the classes of the package's source that derive from SearchSpace."""
    bases: dict[str, set[str]] = {}
    for file in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                         for b in node.bases}
                bases.setdefault(node.name, set()).update(names)
    found = {"SearchSpace"}
    while True:
        more = {name for name, parents in bases.items() if parents & found} - found
        if not more:
            return found - {"SearchSpace"}
        found |= more


def _subclasses(cls: type) -> set[type]:
    result: set[type] = set()
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        result |= {sub} | _subclasses(sub)
    return result


def test_every_space_of_the_package_is_swept() -> None:
    swept = {type(_space(name)) for name in SPACES}
    exported = {
        obj
        for module in (spaces_module, autodeeplab_module)
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, SearchSpace) and not inspect.isabstract(obj)
    }
    loaded = {
        cls for cls in _subclasses(SearchSpace)
        if cls.__module__.startswith("optuna_nas.") and not inspect.isabstract(cls)
    }
    in_source = _space_classes_in_source()
    assert {"NasBench201Space", "AutoDeepLabSpace", "NasNetCells"} <= in_source
    known = {cls.__name__ for cls in exported | loaded} | in_source
    missing = sorted(known - {cls.__name__ for cls in swept})
    assert not missing, f"add a factory for {missing} to SPACES in tests/test_bad_input.py"


# ---- strategies ------------------------------------------------------------------------
SEEDS = st.integers(0, 2**32 - 1)
TOKEN = re.compile(r"[A-Za-z_]+|[0-9]+|\s+|.", re.DOTALL)

HUGE = ("9" * 40, "1" * 4301, "1" * 5000, "-" + "9" * 30, "1e309", "-1e309", "10**100")
JUNK = (
    "", " ", "(", ")", "[", "]", "{", "}", "'", '"', "'''", ",", ",,", "|", "||", "+", "~",
    ":", ";", "@", "<", ">", "=", "x", "/", "\\", "*", "**", "-", ".", "0", "1", "2", "-1",
    "01", "1.0", "0x1", "1_0", "True", "None", "nan", "inf", "-inf", "()", "[]", "{}", "{1}",
    "lambda: 0", "__import__('os')", "range(", "range(1, 9)", "range(0)", "range(1, 9, 0)",
    "range(10**9)", "Genotype(", "Genotype()", "AutoDeepLab(", "tree=", "inject=", "c_t=",
    "normal=", "reduce=", "normal_concat=", "recurrent=", "concat=", "rates=", "cell=",
    "\x00", "\n", "\r", "\t", "\u00a0", "\u00e9", "\u202e", "\u0663", "\u00b2", "\uff10",
    "\U0001f600", "\ufeff", "(" * 300, "[" * 300, "[" * 60 + "]" * 60, *HUGE,
)


@cache
def _vocabulary(name: str) -> tuple[str, ...]:
    """Tokens of a few valid strings of a space, its choices and names, and junk."""
    space = _space(name)
    words: set[str] = set(JUNK)
    for seed in range(8):
        words.update(TOKEN.findall(str(space.sample(seed))))
    for decision in space.decisions:
        words.add(decision.name)
        words.update(str(choice) for choice in decision.choices)
    return tuple(sorted(words))


def _piece(rnd: random.Random, name: str, wild: str) -> str:
    """Something to insert: a token of the space or junk, a number, a huge number, or the
    example's random text."""
    kind = rnd.randrange(6)
    if kind <= 2:
        return rnd.choice(_vocabulary(name))
    if kind == 3:
        return str(rnd.randint(-(10**6), 10**6))
    return rnd.choice(HUGE) if kind == 4 else wild


EDITS = (
    "delete", "insert", "replace", "duplicate", "truncate", "swap", "retoken", "repeat",
    "space", "requote",  # Edits that may keep the string valid.
)

QUOTES = str.maketrans({"'": '"', '"': "'"})
BRACKETS = str.maketrans({"[": "(", "]": ")", "(": "[", ")": "]"})

# Hypothesis draws the example's seed and a random text; positions and edits come from the
# seed (a draw per choice makes the sweep several times slower), and a failure reports the
# final string.


@st.composite
def mutated_strings(draw: st.DrawFn, name: str) -> str:
    """A valid string of the space with one to five random edits."""
    rnd = random.Random(draw(SEEDS))
    wild = draw(st.text(max_size=6))
    text = str(_space(name).sample(rnd))
    for _ in range(rnd.randint(1, 5)):
        edit = rnd.choice(EDITS)
        i = rnd.randint(0, len(text))
        j = rnd.randint(i, len(text))
        tokens = TOKEN.findall(text)
        if edit == "delete":
            text = text[:i] + text[j:]
        elif edit == "insert":
            text = text[:i] + _piece(rnd, name, wild) + text[i:]
        elif edit == "replace":
            text = text[:i] + _piece(rnd, name, wild) + text[j:]
        elif edit == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif edit == "truncate":
            text = text[:i]
        elif edit == "repeat":
            text = text[:i] + text[i:j] * rnd.randint(2, 40) + text[j:]
        elif edit == "space":
            text = text[:i] + rnd.choice([" ", "  ", "\t", "\n", "\r\n", "\u00a0"]) + text[i:]
        elif edit == "requote":
            text = text.translate(rnd.choice([QUOTES, BRACKETS]))
        elif tokens:
            a, b = rnd.randrange(len(tokens)), rnd.randrange(len(tokens))
            if edit == "swap":
                tokens[a], tokens[b] = tokens[b], tokens[a]
            else:
                tokens[a] = _piece(rnd, name, wild)
            text = "".join(tokens)
    return text


@cache
def _tokens_of_kind(name: str, kind: str) -> tuple[str, ...]:
    """The vocabulary's words (identifiers) or its punctuation."""
    if kind == "word":
        return tuple(w for w in _vocabulary(name) if w.isidentifier())
    return tuple(w for w in _vocabulary(name) if len(w) == 1 and not w.isalnum())


def _same_kind(rnd: random.Random, token: str, name: str) -> str:
    """A token of the same kind: a number for a number, a word for a word, else punctuation."""
    if token.isdigit():
        return str(rnd.randint(-3, 40)) if rnd.randrange(4) else rnd.choice(HUGE)
    return rnd.choice(_tokens_of_kind(name, "word" if token.isidentifier() else "other"))


@st.composite
def plausible_strings(draw: st.DrawFn, name: str) -> str:
    """Strings built from the space's own tokens: a valid string with one to four tokens
    swapped for tokens of the same kind, or a free sequence of the space's tokens."""
    rnd = random.Random(draw(SEEDS))
    if rnd.randrange(2):
        tokens = TOKEN.findall(str(_space(name).sample(rnd)))
        for _ in range(rnd.randint(1, 4)):
            index = rnd.randrange(len(tokens))
            tokens[index] = _same_kind(rnd, tokens[index], name)
        return "".join(tokens)
    return "".join(rnd.choices(_vocabulary(name), k=rnd.randint(0, 60)))


def _check_message(error: Exception, limit: int = 1000) -> None:
    """A message that says what is wrong, without echoing megabytes of input."""
    message = str(error)
    assert message.strip(), "an error without a message"
    assert len(message) <= limit, f"a message of {len(message)} characters: {message[:300]}"


def _check_parse(space: SearchSpace, string: Any) -> None:
    """Parsing ``string`` gives an architecture that round-trips, or a NasError; either
    way without warnings (a genotype's stray backslash must not print a SyntaxWarning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            arch = space.parse(string)
        except NasError as error:
            arch = None
            assert isinstance(error, ArchitectureError), repr(error)
            _check_message(error)
    assert not caught, [str(w.message) for w in caught]
    if arch is None:
        return
    assert isinstance(arch, Architecture) and arch.space == space.name
    again = space.parse(str(arch))
    assert again == arch and str(again) == str(arch)
    assert space.from_params(space.to_params(arch)) == arch


# ---- parse -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SPACES))
@SWEEP
@given(string=st.text())
def test_parse_random_text(name: str, string: str) -> None:
    _check_parse(_space(name), string)


@pytest.mark.parametrize("name", list(SPACES))
@SWEEP
@given(data=st.data())
def test_parse_mutated_valid_strings(name: str, data: st.DataObject) -> None:
    _check_parse(_space(name), data.draw(mutated_strings(name), label="string"))


@pytest.mark.parametrize("name", list(SPACES))
@SWEEP
@given(data=st.data())
def test_parse_strings_of_the_spaces_own_tokens(name: str, data: st.DataObject) -> None:
    _check_parse(_space(name), data.draw(plausible_strings(name), label="string"))


@pytest.mark.parametrize("name", list(SPACES))
def test_parse_with_huge_numbers(name: str) -> None:
    """Each number of a valid string in turn replaced with one too long for int()."""
    space = _space(name)
    string = str(space.sample(0))
    for match in re.finditer(r"[0-9]+", string):
        for huge in ("1" * 5000, "9" * 40, "0" * 5000 + "1", "-" + "1" * 5000):
            _check_parse(space, string[: match.start()] + huge + string[match.end() :])


@pytest.mark.parametrize("name", list(SPACES))
@pytest.mark.parametrize(
    "value",
    [None, 0, 1.5, True, b"|none~0|", bytearray(b"x"), ["|none~0|"], ("a",), {"a": 1}, object()],
    ids=lambda v: type(v).__name__,
)
def test_parse_non_strings(name: str, value: Any) -> None:
    space = _space(name)
    with pytest.raises(ArchitectureError, match="expected an architecture string"):
        space.parse(value)
    with pytest.raises(ArchitectureError, match="expected an architecture string"):
        space.parse(space.sample(0))  # type: ignore[arg-type]  # not its string


# ---- from_params and from_values -------------------------------------------------------
@cache
def _all_choices() -> tuple[Any, ...]:
    """Every choice of every swept space: values of the right kind for the wrong decision."""
    choices: dict[tuple[type, Any], Any] = {}
    for name in SPACES:
        for decision in _space(name).decisions:
            for choice in decision.choices:
                choices[(type(choice), choice)] = choice
    return tuple(choices.values())


#: Values of every wrong kind; each example also draws one value and one key with Hypothesis.
JUNK_POOL: tuple[Any, ...] = (
    None, True, False, 0, 1, -1, 2, 70, 2**64, -(10**40), 10**5000, 0.0, -0.0, 1.0, 0.5,
    math.nan, math.inf, -math.inf, "", " ", "none", "relu", "0,1", " 0,1", "1,0", "0, 1", "1",
    "True", "\x00", "\U0001f600", b"relu", bytearray(b"1"), [], [0, 1], ("relu", 0), {},
    {"a": 1}, set(), frozenset({1}), 1 + 2j, object(), Ellipsis, np.int64(1), np.float64(0.5),
    np.str_("relu"), np.bool_(True), np.array([1]),
)
JUNK_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=6),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(JUNK_POOL),
)
JUNK_KEYS: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=12), st.integers(), st.none(), st.tuples(st.integers(), st.text(max_size=2))
)
WRONG_PREFIXES = ("", "arch", "Arch/", "/arch/", "arch//", "arch/ ", "other/", "arch/arch/")
PARAM_EDITS = ("junk", "choice", "drop", "add", "prefix", "ordinary", "inactive")


@st.composite
def broken_params(draw: st.DrawFn, name: str) -> dict[Any, Any]:
    """The params of a valid architecture with one to four edits, or a random dict."""
    space = _space(name)
    rnd = random.Random(draw(SEEDS))  # Picks keys, edits and pooled junk.
    junk_value, junk_key = draw(JUNK_VALUES), draw(JUNK_KEYS)
    names = [space.param_name(d) for d in space.decisions]
    values = (*JUNK_POOL, *_all_choices(), junk_value)
    keys = (*names, junk_key, space.param_name(str(junk_key)), None, 0, "", "arch", "arch/")
    if rnd.randrange(10) == 0:
        return {rnd.choice(keys): rnd.choice(values) for _ in range(rnd.randint(0, 6))}
    arch = space.sample(rnd)
    params: dict[Any, Any] = dict(space.to_params(arch))
    for _ in range(rnd.randint(1, 4)):
        edit = rnd.choice(PARAM_EDITS)
        keys_now = list(params)
        if edit == "junk" and keys_now:
            params[rnd.choice(keys_now)] = junk_value if rnd.randrange(2) else rnd.choice(values)
        elif edit == "choice":  # Another choice of the decision (the decisions it gates
            # then are missing or given though inactive), or a choice of another decision.
            decision = rnd.choice(space.decisions)
            choices = decision.choices if rnd.randrange(2) else _all_choices()
            params[space.param_name(decision)] = rnd.choice(choices)
        elif edit == "drop" and keys_now:
            del params[rnd.choice(keys_now)]
        elif edit == "add":
            params[rnd.choice(keys)] = rnd.choice(values)
        elif edit == "prefix" and keys_now:
            key = rnd.choice(keys_now)
            value = params.pop(key)
            bare = key[len(space.prefix) :] if isinstance(key, str) else key
            params[f"{rnd.choice(WRONG_PREFIXES)}{bare}"] = value
        elif edit == "ordinary":  # An ordinary hyperparameter beside the architecture's.
            params[rnd.choice(["lr", "optimizer", "x/arch/", ""])] = rnd.choice(values)
        elif edit == "inactive":
            made = arch.as_dict()
            inactive = [d for d in space.decisions if d.name not in made]
            if inactive:
                decision = rnd.choice(inactive)
                params[space.param_name(decision)] = rnd.choice(decision.choices)
    return params


def _typed(values: Mapping[Any, Any]) -> dict[Any, tuple[type, Any]]:
    return {key: (type(value), value) for key, value in values.items()}


def _check_values(space: SearchSpace, given_values: dict[Any, Any], prefixed: bool) -> None:
    """Accepted params or values give exactly the architecture they name (nothing dropped,
    nothing converted); anything else gives a NasError."""
    try:
        arch = space.from_params(given_values) if prefixed else space.from_values(given_values)
    except NasError as error:
        assert isinstance(error, ArchitectureError), repr(error)
        _check_message(error)
        return
    assert space.parse(str(arch)) == arch
    if prefixed:
        arch_params = {
            k: v for k, v in given_values.items()
            if isinstance(k, str) and k.startswith(space.prefix)
        }
        assert _typed(arch_params) == _typed(space.to_params(arch))
    else:
        assert _typed(given_values) == _typed(arch.as_dict())


@pytest.mark.parametrize("name", list(SPACES))
@SWEEP
@given(data=st.data())
def test_from_params_and_from_values_with_broken_input(name: str, data: st.DataObject) -> None:
    """Broken params to from_params, and the same with the prefix taken off (other keys
    kept, as unknown decisions) to from_values."""
    space = _space(name)
    params = data.draw(broken_params(name), label="params")
    _check_values(space, params, prefixed=True)
    values = {
        key[len(space.prefix) :] if isinstance(key, str) and key.startswith(space.prefix)
        else key: value
        for key, value in params.items()
    }
    _check_values(space, values, prefixed=False)


@pytest.mark.parametrize("name", list(SPACES))
@pytest.mark.parametrize(
    "value", [None, 0, "arch/1<-0", b"arch/", [("arch/1<-0", "none")], object()],
    ids=lambda v: type(v).__name__,
)
def test_from_params_and_from_values_of_non_mappings(name: str, value: Any) -> None:
    space = _space(name)
    with pytest.raises(ArchitectureError, match="mapping"):
        space.from_params(value)
    with pytest.raises(ArchitectureError, match="mapping"):
        space.from_values(value)


# ---- the NAS-Bench-201 table loader ----------------------------------------------------
COLUMNS = ("arch", *NUMERIC_COLUMNS)
CELL_JUNK = (
    "", " ", "nan", "NaN", "inf", "-inf", "1e999", "-1", "0", "-0", "abc", "1,5", "1.2.3",
    "0x10", "\u0663", "\u00b2", "\x00", '"', "'", "\n", "\r\n", "|none~0|", "None", "1" * 400,
    "|none~0|+|none~0|none~1|+|none~0|none~1|", " |none~0|+|none~0|none~1|+|none~0|none~1|"
    "none~2| ", "\U0001f600", "\ufeff",
)
RAW_LINES = (
    "", ",,,,,,", '"unterminated,1,2,3,4,5,6', 'a,"b"c,1,2,3,4,5', "\x00,\x00", ";".join(COLUMNS),
    "\t".join(COLUMNS), "arch", ",".join(COLUMNS), "#,comment", "1" * 200_000,
)
ROW_EDITS = ("cell", "text", "fewer", "more", "duplicate", "blank", "raw")
HEADER_EDITS = ("drop", "rename", "reorder", "duplicate", "extra", "case", "space", "none")


@st.composite
def table_files(draw: st.DrawFn) -> bytes:
    """The bytes of a NAS-Bench-201 CSV table, most of them broken somewhere: binary or
    random text, or a table with a broken header, and rows with broken cells or lines."""
    rnd = random.Random(draw(SEEDS))  # Picks the edits; junk text is drawn by Hypothesis.
    junk = draw(st.text(max_size=40))
    kind = rnd.randrange(20)
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return junk.encode("utf-8", "surrogatepass")
    header = list(COLUMNS)
    index = rnd.randrange(len(header))
    header_edit = rnd.choice(HEADER_EDITS) if kind <= 7 else "keep"
    if header_edit == "drop":
        del header[index]
    elif header_edit == "rename":
        header[index] = rnd.choice(["", "Arch", "arch ", "acc", header[index] + "_", junk])
    elif header_edit == "reorder":
        rnd.shuffle(header)
    elif header_edit == "duplicate":
        header.insert(index, header[index])
    elif header_edit == "extra":
        header.insert(index, junk[:5])
    elif header_edit == "case":
        header[index] = header[index].upper()
    elif header_edit == "space":
        header[index] = f" {header[index]}"
    space = _space("nasbench201")
    rows: list[list[str]] = []
    for _ in range(rnd.randint(0, 5)):
        row = {"arch": str(space.sample(rnd))}
        for column in NUMERIC_COLUMNS:
            row[column] = repr(rnd.uniform(0.001, 100.0))
        rows.append([row.get(column, "1") for column in header])
    lines: list[str] = []
    for _ in range(rnd.randint(0, 2) if rows else 0):
        edit = rnd.choice(ROW_EDITS)
        r, c = rnd.randrange(len(rows)), rnd.randrange(len(header))
        if edit == "cell" and c < len(rows[r]):
            rows[r][c] = rnd.choice(CELL_JUNK)
        elif edit == "text" and c < len(rows[r]):
            rows[r][c] = junk[:8]
        elif edit == "fewer":
            rows[r] = rows[r][:c]
        elif edit == "more":
            rows[r] = rows[r] + rnd.choices(CELL_JUNK, k=rnd.randint(1, 3))
        elif edit == "duplicate":
            rows.append(list(rows[r]))
        elif edit == "blank":
            rows.insert(r, [])
        elif edit == "raw":
            lines.append(rnd.choice([*RAW_LINES, junk]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=rnd.choice(["\n", "\r\n"]))
    if header_edit != "none":
        writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue() + "".join(line + "\n" for line in lines)
    prefix = rnd.choice(["\ufeff", "\n", " ", "#"]) if rnd.randrange(8) == 0 else ""
    encoding = "utf-16" if rnd.randrange(10) == 0 else "utf-8"
    return (prefix + text).encode(encoding, "surrogatepass")


@pytest.fixture(scope="module")
def table_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tables")


@SWEEP
@given(content=table_files())
def test_table_loader_with_broken_files(table_folder: Path, content: bytes) -> None:
    path = table_folder / "table.csv"
    path.write_bytes(content)
    try:
        table = NasBench201Table.load(path)
    except NasError as error:
        assert isinstance(error, TableError), repr(error)
        assert str(path) in str(error), f"the message does not name the file: {error}"
        _check_message(error, limit=1000 + 2 * len(str(path)))
        return
    assert len(table) >= 1
    for row in table:
        assert table[row.arch] is row and table[str(row.arch)] is row
        assert row.arch in table and str(row.arch) in table
        assert all(math.isfinite(v) for v in row.as_dict().values() if isinstance(v, float))
        assert row.search_cost_s > 0


HEADER = ",".join(COLUMNS) + "\n"
ROW = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1,2,3,4,5,6\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (("\n" + HEADER + ROW).encode(), "starts with a blank line"),
        (HEADER.encode(), "has no rows"),
        ((HEADER + ROW).encode("utf-16"), "not UTF-8 text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text"),
        ((HEADER + ROW + ROW).encode(), "duplicate architecture"),
        ((HEADER + ROW.replace(",6", ",6,7")).encode(), "more fields than the header"),
        ((HEADER + ROW.replace(",5,6", "")).encode(), "fewer fields than the header"),
        ((HEADER + ROW.replace(",2,", ",-2,")).encode(), "costs must be positive"),
        ((HEADER + ROW.replace(",4,", ",nan,")).encode(), "not a finite number"),
        ((HEADER + "1" * 200_000 + "\n").encode(), "field larger than field limit"),
        ((HEADER.replace("arch", "Arch") + ROW).encode(), "lacks column(s) arch"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_table_loader_says_what_is_wrong(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "cifar10.csv"
    path.write_bytes(content)
    with pytest.raises(TableError, match=re.escape(message)) as info:
        NasBench201Table.load(path)
    assert str(path) in str(info.value)


def test_table_loader_with_bad_paths(tmp_path: Path) -> None:
    missing = tmp_path / "nasbench201" / "cifar10.csv"
    with pytest.raises(TableError, match="does not exist") as info:
        NasBench201Table.load(missing)
    assert str(missing) in str(info.value) and "arch, search_valid_acc" in str(info.value)
    with pytest.raises(TableError, match="is a directory"):
        NasBench201Table.load(tmp_path)
    with pytest.raises(TableError, match="does not exist"):
        NasBench201Table.load(tmp_path / "a\x00b.csv")
    with pytest.raises(TableError, match="cannot be opened|does not exist"):
        NasBench201Table.load(tmp_path / ("x" * 5000))
    for value in (None, 12, b"table.csv", ["table.csv"]):
        with pytest.raises(TableError, match="path"):
            NasBench201Table.load(value)  # type: ignore[arg-type]


def test_table_lookups_with_bad_keys(tmp_path: Path) -> None:
    space = NasBench201Space()
    arch = space.sample(0)
    path = tmp_path / "table.csv"
    path.write_text(",".join(COLUMNS) + f"\n{arch},1,2,3,4,5,6\n", encoding="utf-8")
    table = NasBench201Table.load(path)
    assert table[arch].final_test_acc == 3.0
    for key in (None, 1, b"x", ["x"], {"x": 1}):
        assert key not in table
        with pytest.raises(ArchitectureError, match="architecture"):
            table.get(key)  # type: ignore[arg-type]
    with pytest.raises(ArchitectureError, match="not a NAS-Bench-201 architecture"):
        table.get(DartsCells().sample(0))
    with pytest.raises(ArchitectureError):
        table.get("not an architecture")
