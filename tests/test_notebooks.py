"""Every notebook in notebooks/ runs top to bottom (nbclient) on CPU at its tiny size, so a notebook that rots fails.

Each notebook runs in its own kernel and its own fresh temporary working directory with ``VLMRM_NOTEBOOK_TINY=1``
(the notebooks' tiny mode) and ``JAX_PLATFORMS=cpu``; a cell that raises fails that notebook's test with the cell's
traceback. At tiny sizes a notebook's time is almost all XLA compiling (its programs then run for milliseconds), so
the kernels compile with LLVM's optimisations off (conftest's ``XLA_FLAGS``, about a third less compile time) and two
notebooks run at once (XLA compiles one program on one core), the longest first. The committed notebooks must hold
no outputs, which is checked too.
"""

import asyncio
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: Started first (they take longest); the others follow in name order.
LONGEST_FIRST = ("vlmrm_humanoid.ipynb", "stacking_agent.ipynb", "scaling_sweep.ipynb")
#: Notebooks executed at once.
PARALLEL = 2
#: Seconds one cell may run (the slowest, the tiny humanoid training run, compiles for ~3 min on 2 idle cores).
CELL_TIMEOUT = 900
KERNEL_ENV = {"VLMRM_NOTEBOOK_TINY": "1", "JAX_PLATFORMS": "cpu"}  # and conftest's XLA_FLAGS, inherited


def test_there_are_notebooks():
    assert {"vlmrm_humanoid.ipynb", "reward_landscapes.ipynb", "stacking_agent.ipynb"} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and (cell.outputs or
                                                                                   cell.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict:
    """Executes every notebook, PARALLEL at a time; name -> (the exception raised or None, seconds)."""
    order = sorted(NOTEBOOKS, key=lambda p: (p.name not in LONGEST_FIRST, LONGEST_FIRST.index(p.name)
                                             if p.name in LONGEST_FIRST else 0, p.name))
    env = {**os.environ, **KERNEL_ENV}
    results = {}

    async def run(path: Path, slots: asyncio.Semaphore):
        async with slots:
            nb = nbformat.read(path, as_version=4)
            workdir = tmp_path_factory.mktemp(path.stem)
            client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                    resources={"metadata": {"path": str(workdir)}})
            start = time.monotonic()
            try:
                await client.async_execute(env=env)
                error = None
            except Exception as e:  # CellExecutionError names the cell and holds its traceback
                error = e
            results[path.name] = (error, time.monotonic() - start)

    async def run_all():
        slots = asyncio.Semaphore(PARALLEL)
        await asyncio.gather(*(run(path, slots) for path in order))

    asyncio.run(run_all())
    return results


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, executed):
    error, seconds = executed[path.name]
    print(f"{path.name}: {seconds:.0f} s")
    if error is not None:
        raise error
