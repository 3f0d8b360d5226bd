"""Write every chapter's badge cell and guarded install cell from ``_config.yml``.

``_config.yml``'s ``repository`` block is the one place that names the repository and
branch. Each chapter notebook has a markdown cell tagged ``badges`` and a code cell
tagged ``setup``; this script rewrites both from that block, so that the Colab badge,
the source link and the install cell never drift from the book's launch buttons.

    python tools/sync_links.py          # rewrite the notebooks that are stale
    python tools/sync_links.py --check  # exit 1 and list them (used by the tests)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

import chapters

ROOT = chapters.ROOT
PACKAGE = "beyond-backprop-helpers"


def repository(root: Path = ROOT) -> dict[str, str]:
    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config["repository"]
    colab = config.get("launch_buttons", {}).get(
        "colab_url", "https://colab.research.google.com"
    )
    return {
        "url": repo["url"].rstrip("/"),
        "branch": repo.get("branch", "main"),
        "path_to_book": (repo.get("path_to_book") or "").strip("/"),
        "colab": colab.rstrip("/"),
    }


def notebook_path_in_repo(notebook: Path, root: Path = ROOT) -> str:
    return notebook.resolve().relative_to(root.resolve()).as_posix()


def colab_url(notebook: Path, root: Path = ROOT) -> str:
    repo = repository(root)
    owner_name = repo["url"].split("github.com/", 1)[1]
    path = notebook_path_in_repo(notebook, root)
    return f"{repo['colab']}/github/{owner_name}/blob/{repo['branch']}/{path}"


def badges_source(notebook: Path, root: Path = ROOT) -> str:
    repo = repository(root)
    source = (
        f"{repo['url']}/blob/{repo['branch']}/{notebook_path_in_repo(notebook, root)}"
    )
    return (
        f"[![Open in Colab](images/colab-badge.svg)]({colab_url(notebook, root)})"
        f" &nbsp; [View the source notebook]({source})"
    )


def setup_source(root: Path = ROOT) -> str:
    """The install cell. IPython expands ``{repo}`` in the ``%pip`` line, which keeps
    every line within the 88 characters of the book's code column."""
    repo = repository(root)
    spec = f"{PACKAGE}[data] @ git+{{repo}}@{repo['branch']}"
    return (
        "# Set-up: where the book's helpers are missing (e.g. on Colab), install "
        "them.\n"
        "try:\n"
        "    import helpers\n"
        "except ModuleNotFoundError:\n"
        f'    repo = "{repo["url"]}"\n'
        f'    %pip install --quiet "{spec}"\n'
        "    import helpers"
    )


def expected_cells(notebook: Path, root: Path = ROOT) -> dict[str, str]:
    return {"badges": badges_source(notebook, root), "setup": setup_source(root)}


def stale_cells(notebook: Path, root: Path = ROOT) -> list[str]:
    """Names of the tagged cells that are missing or differ from what _config.yml
    implies.
    """
    nb = nbformat.read(notebook, as_version=4)
    want = expected_cells(notebook, root)
    found = {
        tag: cell.source
        for cell in nb.cells
        for tag in cell.metadata.get("tags", [])
        if tag in want
    }
    return [tag for tag, text in want.items() if found.get(tag) != text]


def sync(notebook: Path, root: Path = ROOT) -> bool:
    """Rewrite the tagged cells; True when the file changed. A missing tagged cell is an
    error.
    """
    nb = nbformat.read(notebook, as_version=4)
    want = expected_cells(notebook, root)
    seen = set()
    changed = False
    for cell in nb.cells:
        for tag in cell.metadata.get("tags", []):
            if tag in want:
                seen.add(tag)
                if cell.source != want[tag]:
                    cell.source = want[tag]
                    changed = True
    missing = set(want) - seen
    if missing:
        raise SystemExit(
            f"{notebook}: no cell tagged {sorted(missing)}; add one (see "
            "book/01_numpy_from_scratch.ipynb)"
        )
    if changed:
        nbformat.write(nb, notebook)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only report stale notebooks; exit 1 if any",
    )
    args = parser.parse_args(argv)
    bad = 0
    for nb in chapters.notebooks():
        if args.check:
            stale = stale_cells(nb)
            if stale:
                bad += 1
                print(
                    f"{nb.relative_to(ROOT)}: stale {stale}; run python "
                    "tools/sync_links.py"
                )
        elif sync(nb):
            print(f"updated {nb.relative_to(ROOT)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
