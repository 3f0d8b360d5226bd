"""Shared fixtures: tiny fake MNIST folders, an offline switch, the book build; the
tools importable by name.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The tools are scripts that import each other by name (``import chapters``: a script's
# own folder comes first on sys.path when it runs); the tests import them the same way
# (``import sweep``).
sys.path.insert(0, str(ROOT / "tools"))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (MNIST's format)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_fake_mnist(
    root: Path,
    folder: str = "MNIST",
    n_train: int = 60_000,
    n_test: int = 10_000,
    seed: int = 0,
) -> Path:
    """A torchvision-layout folder with MNIST-shaped files of random pixels.

    Labels cycle 0..9 with an uneven tail so that stratification is not trivial; the
    pixel value of image i encodes i % 251 in its first pixel, so tests can tell images
    apart.
    """
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n) % 251
        labels = (np.arange(n) * 7 + np.arange(n) // 13) % 10
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(scope="session")
def fake_mnist_root(tmp_path_factory) -> Path:
    return make_fake_mnist(tmp_path_factory.mktemp("fake_data"))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No BOOK_DATA_DIR, an empty cache, and every non-loopback connection refused."""
    monkeypatch.delenv("BOOK_DATA_DIR", raising=False)
    monkeypatch.setenv("BOOK_CACHE_DIR", str(tmp_path / "cache"))
    real_connect = socket.socket.connect

    def refuse(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (
            host.startswith("127.") or host in ("localhost", "::1")
        ):
            return real_connect(self, address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: (_ for _ in ()).throw(socket.gaierror("offline")),
    )
    return tmp_path


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The files that register the chapters and that the scoreboard reads and writes,
    copied to tmp_path: the chapter notebooks, _toc.yml, the tables of chapters, the
    claims registry, the pages, the results and the benchmark and run records."""
    import chapters  # tools/chapters.py

    root = tmp_path / "repo"
    for rel in (
        "README.md",
        "_toc.yml",
        "book/intro.md",
        "helpers/claims.yml",
        "book/references.bib",
        "book/scoreboard.md",
        "book/performance.md",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, root / rel)
    for nb in chapters.notebooks():
        shutil.copy(nb, root / "book" / nb.name)
    (root / "results").mkdir()
    for f in (ROOT / "results").glob("*.json"):
        shutil.copy(f, root / "results" / f.name)
    for folder in ("benchmarks", "runs"):  # the benchmark records and the run records
        if (ROOT / "results" / folder).is_dir():
            shutil.copytree(ROOT / "results" / folder, root / "results" / folder)
    return root


JUPYTER_BOOK = (
    shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    or "jupyter-book"
)


def build(source: Path, output: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            JUPYTER_BOOK,
            "build",
            str(source),
            "--path-output",
            str(output),
            "-W",
            "-n",
            "--keep-going",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build the book once per test session; fail on any warning (-W -n
    --keep-going).
    """
    out = tmp_path_factory.mktemp("book")
    result = build(ROOT, out)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"jupyter-book build failed:\n{log[-6000:]}"
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert not warnings, "Sphinx warnings:\n" + "\n".join(warnings)
    return out / "_build" / "html"


@pytest.fixture
def places(tmp_path, monkeypatch, fake_mnist_root):
    """Run records on the generated MNIST-shaped folder, in a fresh cache and results
    folder, 1 thread.
    """
    import torch

    monkeypatch.setenv("BOOK_DATA_DIR", str(fake_mnist_root))
    monkeypatch.setenv("BOOK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BOOK_RESULTS_DIR", str(tmp_path / "results"))
    torch.set_num_threads(1)
    return tmp_path
