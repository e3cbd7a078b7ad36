"""Every ```python block of README.md and docs/*.md runs as written.

The blocks of one file run in order, each in a fresh interpreter, in one working folder
of their own, so a block may read a file an earlier block of the same page wrote. Blocks
that import onnxruntime run in the ONNX Runtime environment (``conftest.ort_python``), the
others with this interpreter.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]
BLOCK = re.compile(r'^```python\n(.*?)^```$', re.S | re.M)


def blocks(page):
    return BLOCK.findall(page.read_text())


def test_the_pages_hold_python_blocks():
    # the pattern finds the blocks the pages have, so that no page is skipped silently
    for page in PAGES:
        fences = page.read_text().count('```python\n')
        assert len(blocks(page)) == fences, page.name
    assert sum(len(blocks(page)) for page in PAGES) >= 8


@pytest.mark.parametrize('page', [p for p in PAGES if blocks(p)],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_run(page, tmp_path, request):
    for number, code in enumerate(blocks(page), start=1):
        python = sys.executable
        if re.search(r'^import .*onnxruntime', code, re.M):
            python = request.getfixturevalue('ort_python')
        proc = subprocess.run([python, '-c', code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, (
            f'{page.name}, python block {number}:\n{code}\n{proc.stderr[-3000:]}')
