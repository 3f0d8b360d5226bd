"""helpers.show_source: the one way a chapter shows a helper's code."""

from __future__ import annotations

import functools
import inspect

import pytest

import helpers
from helpers import source
from helpers.local_errors import FixedReadout, local_losses


def test_listing_has_the_file_the_line_numbers_and_the_code():
    lines, start = inspect.getsourcelines(local_losses)
    item = source.listing(local_losses)
    assert item.path == "helpers/local_errors.py"
    assert item.numbers == tuple(range(start, start + len(lines)))
    assert item.lines[0].startswith("def local_losses(")
    assert item.caption == (
        f"helpers/local_errors.py, lines {start}\u2013{start + len(lines) - 1}: "
        "local_losses"
    )
    text = str(item).splitlines()
    assert text[0] == item.caption
    assert text[1] == f"{start}  {lines[0].rstrip()}"  # numbered as in the file


def test_a_method_is_dedented_and_keeps_its_file_line_numbers():
    lines, start = inspect.getsourcelines(FixedReadout.forward)
    item = source.listing(FixedReadout(3, 2).forward)  # a bound method
    assert item.name == "FixedReadout.forward"
    assert item.lines[0] == "def forward(self, h: torch.Tensor) -> torch.Tensor:"
    assert item.numbers[0] == start and len(item.lines) == len(lines)
    partial = source.listing(functools.partial(local_losses, detach=False))
    assert partial.name == "local_losses"


def test_docstring_false_drops_only_the_docstring_and_marks_the_gap():
    full = source.listing(local_losses)
    short = source.listing(local_losses, docstring=False)
    doc = inspect.getdoc(local_losses).splitlines()
    assert short.docstring_omitted and short.caption.endswith("docstring omitted")
    quotes = [i for i, line in enumerate(full.lines) if '"""' in line]
    dropped = [line for line in full.lines if line not in short.lines]
    assert dropped == list(
        full.lines[quotes[0] : quotes[-1] + 1]
    )  # the docstring, no more
    assert short.lines[-1] == full.lines[-1] and short.numbers[-1] == full.numbers[-1]
    assert "\u22ee" in str(short)  # the skipped numbers are marked, not hidden
    assert not any(doc[0] in line for line in short.lines)
    # an object without a docstring is shown whole
    bare = source.listing(FixedReadout.forward, docstring=False)
    assert (
        not bare.docstring_omitted
        and bare.lines == source.listing(FixedReadout.forward).lines
    )


def test_html_is_highlighted_and_escaped_with_numbers_beside_the_code():
    item = source.listing(local_losses)
    page = item._repr_html_()
    assert item.caption in page.replace("&#x27;", "'")
    assert (
        "<span style=" in page
    )  # highlighted with inline styles (no stylesheet needed)
    assert (
        "&gt;" in page and "->" not in page.split("</figcaption>")[1]
    )  # `->` is escaped
    numbers = page.split('user-select:none;border-right:1px solid #ddd;">')[1].split(
        "</pre>"
    )[0]
    assert numbers.split("\n") == [str(n) for n in item.numbers]


def test_show_source_prints_plain_text_outside_ipython(capsys, monkeypatch):
    monkeypatch.setattr(source, "_ipython_shell", lambda: None)
    assert helpers.show_source(local_losses, FixedReadout.forward) is None
    out = capsys.readouterr().out
    assert out.startswith("helpers/local_errors.py, lines ")
    assert "\n\nhelpers/local_errors.py, lines " in out and "def forward(self" in out


def test_show_source_displays_html_and_text_in_ipython(monkeypatch):
    pytest.importorskip("IPython")
    import IPython.display

    shown = []
    monkeypatch.setattr(source, "_ipython_shell", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda *objs: shown.extend(objs))
    helpers.show_source(local_losses)
    assert len(shown) == 1 and isinstance(shown[0], source.Listing)


def test_objects_without_python_source_are_refused_with_the_fix():
    with pytest.raises(
        TypeError, match=r"has no source file.*show_source\(helpers.fit\)"
    ):
        source.listing(len)
    with pytest.raises(TypeError, match="at least one object"):
        helpers.show_source()
