"""Security basics, checked on the package's source with :mod:`ast`: nothing unpickles or
evaluates what a user hands it.

* every ``torch.load`` passes ``weights_only=True`` (a checkpoint is tensors and plain
  values; a full unpickle of a downloaded or shared file runs arbitrary code);
* nothing imports ``pickle``, ``dill``, ``cloudpickle``, ``marshal``, ``shelve`` or
  ``joblib``;
* ``numpy.load`` never gets ``allow_pickle=True``; ``yaml.load`` always gets a safe loader
  (and ``yaml.unsafe_load`` is not used);
* no ``eval`` or ``exec`` (strings are read with ``ast.parse`` and ``ast.literal_eval``);
* no shell: no ``os.system``/``os.popen``, no ``shell=True``.

The scanner follows import aliases (``import torch as t``, ``from torch import load``).
``test_the_scanner_flags_unsafe_code`` proves it can fail.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import optuna_nas

PACKAGE = Path(optuna_nas.__file__).resolve().parent

BANNED_MODULES = frozenset({"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "marshal",
                            "shelve", "joblib"})
SAFE_YAML_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})


class _Scanner(ast.NodeVisitor):
    """Collects ``(line, problem)`` for each unsafe construct of one module."""

    def __init__(self) -> None:
        self.problems: list[tuple[int, str]] = []
        self.aliases: dict[str, str] = {}  # local name -> dotted name it stands for

    # ---- names ------------------------------------------------------------------------
    def _dotted(self, node: ast.expr) -> str | None:
        """The dotted name an expression stands for, through import aliases."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self._dotted(node.value)
            return f"{base}.{node.attr}" if base is not None else None
        return None

    def _flag(self, node: ast.AST, problem: str) -> None:
        self.problems.append((getattr(node, "lineno", 0), problem))

    # ---- imports ----------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] in BANNED_MODULES:
                self._flag(node, f"imports {alias.name}")
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0 and module.split(".")[0] in BANNED_MODULES:
            self._flag(node, f"imports from {module}")
        for alias in node.names:
            if node.level == 0 and alias.name in BANNED_MODULES:
                self._flag(node, f"imports {alias.name} from {module}")
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        self.generic_visit(node)

    # ---- calls ------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        name = self._dotted(node.func)
        keywords = {k.arg: k.value for k in node.keywords if k.arg is not None}
        if name == "torch.load" and not _is_constant(keywords.get("weights_only"), True):
            self._flag(node, "torch.load without weights_only=True")
        if name in ("numpy.load", "np.load") and "allow_pickle" in keywords and not (
            _is_constant(keywords["allow_pickle"], False)
        ):
            self._flag(node, "numpy.load with allow_pickle")
        if name in ("yaml.load", "yaml.load_all"):
            loader = keywords.get("Loader", node.args[1] if len(node.args) > 1 else None)
            loader_name = self._dotted(loader) if loader is not None else None
            if loader_name is None or loader_name.split(".")[-1] not in SAFE_YAML_LOADERS:
                self._flag(node, f"{name} without a safe Loader")
        if name in ("yaml.unsafe_load", "yaml.unsafe_load_all"):
            self._flag(node, name)
        if name in ("eval", "exec", "builtins.eval", "builtins.exec"):
            self._flag(node, f"calls {name}")
        if name in ("os.system", "os.popen"):
            self._flag(node, f"calls {name}")
        if name is not None and name.startswith("subprocess.") and _is_constant(
            keywords.get("shell"), True
        ):
            self._flag(node, f"{name} with shell=True")
        self.generic_visit(node)


def _is_constant(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def scan(source: str) -> list[tuple[int, str]]:
    """The unsafe constructs of a module's source, as ``(line, problem)``."""
    scanner = _Scanner()
    scanner.visit(ast.parse(source))
    return scanner.problems


def test_the_package_has_no_unsafe_loading_or_evaluation() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20, f"too few files under {PACKAGE}"
    problems = [
        f"{file.relative_to(PACKAGE.parent)}:{line}: {problem}"
        for file in files
        for line, problem in scan(file.read_text(encoding="utf-8"))
    ]
    assert not problems, "unsafe code:\n" + "\n".join(problems)


def test_the_package_does_load_checkpoints_with_weights_only() -> None:
    """The scan sees the package's real torch.load calls (it is not scanning nothing)."""
    source = (PACKAGE / "supernet" / "_checkpoint.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    loads = [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load"
    ]
    assert loads and all(
        any(k.arg == "weights_only" and _is_constant(k.value, True) for k in call.keywords)
        for call in loads
    )


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load(f)",
        "import torch\ntorch.load(f, weights_only=False)",
        "import torch\ntorch.load(f, weights_only=flag)",
        "import torch as t\nt.load(f, map_location='cpu')",
        "from torch import load\nload(f)",
        "from torch import load as restore\nrestore(f)",
        "import pickle",
        "import cloudpickle as cp",
        "from pickle import loads",
        "import dill",
        "import marshal",
        "import shelve",
        "from joblib import load",
        "import numpy as np\nnp.load(f, allow_pickle=True)",
        "import numpy\nnumpy.load(f, allow_pickle=flag)",
        "import yaml\nyaml.load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.FullLoader)",
        "import yaml\nyaml.unsafe_load(text)",
        "eval(text)",
        "exec(code)",
        "import builtins\nbuiltins.eval(text)",
        "import os\nos.system(command)",
        "import subprocess\nsubprocess.run(command, shell=True)",
        "def f():\n    import torch\n    return torch.load(path)",
    ],
)
def test_the_scanner_flags_unsafe_code(snippet: str) -> None:
    assert scan(textwrap.dedent(snippet)), f"not flagged:\n{snippet}"


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load(f, map_location='cpu', weights_only=True)",
        "import torch\ntorch.save(state, f)",
        "import numpy as np\nnp.load(f)\nnp.load(f, allow_pickle=False)",
        "import yaml\nyaml.safe_load(text)\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.load(text, yaml.CSafeLoader)",
        "import ast\nast.literal_eval(text)\nast.parse(text, mode='eval')",
        "model.eval()",
        "import json\njson.load(f)",
        "import subprocess\nsubprocess.run([sys.executable, '-m', 'x'], check=False)",
    ],
)
def test_the_scanner_passes_safe_code(snippet: str) -> None:
    assert scan(snippet) == []
