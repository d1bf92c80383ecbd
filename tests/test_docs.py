"""The README's and the quickstart's code blocks run as written, shrunk by one variable.

``OPTUNA_NAS_DOCS_QUICK=1`` is read by the blocks themselves (they say so), so the suite runs
the very text a newcomer copies, not an edited copy of it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = {"README.md": "first-study", "docs/quickstart.md": "my-study"}
_FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(markdown: str) -> list[str]:
    return [match.group(1) for match in _FENCE.finditer(markdown)]


def _run(block: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPTUNA_NAS_DOCS_QUICK": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", block], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )


def test_blocks_are_found() -> None:
    text = "intro\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\n"]


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_code_blocks_run_and_resume_their_study(doc: str, tmp_path: Path) -> None:
    blocks = python_blocks((ROOT / doc).read_text(encoding="utf-8"))
    assert blocks, f"{doc} has no python code block"
    # The first block is the first study; later blocks (if any) run after it in order.
    for block in blocks:
        assert "OPTUNA_NAS_DOCS_QUICK" in block, f"a block of {doc} ignores the quick switch"
        result = _run(block, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    # Running the first block again resumes the same named study instead of starting
    # a second one in the same file.
    again = _run(blocks[0], tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    storage = f"sqlite:///{tmp_path / 'nas.db'}"
    summaries = optuna.get_all_study_summaries(storage)
    assert [summary.study_name for summary in summaries] == [DOCS[doc]]
    study = optuna.load_study(study_name=DOCS[doc], storage=storage)
    assert len(study.trials) == 4
    assert study.metric_names == ["valid accuracy"]
