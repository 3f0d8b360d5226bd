"""Show a helper's source code in a chapter: the book's one way of doing it.

``show_source(helpers.local_errors.local_losses)`` displays the function's code with
its file (``helpers/local_errors.py``) and line numbers as a caption. In a notebook the
code is syntax-highlighted HTML (inline styles, so it looks the same in Jupyter, Colab
and the rendered book); outside IPython it is printed as plain text.
"""

from __future__ import annotations

import ast
import html
import inspect
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Listing", "listing", "show_source"]


@dataclass(frozen=True)
class Listing:
    """Source lines of one object, with the line number of each in its file.

    ``path`` is the file relative to the folder that holds its package
    (``helpers/local_errors.py``); ``numbers[i]`` is the line number of ``lines[i]``.
    It displays as highlighted HTML in IPython and as numbered text everywhere else.
    """

    name: str
    path: str
    lines: tuple[str, ...]
    numbers: tuple[int, ...]
    docstring_omitted: bool = False

    @property
    def code(self) -> str:
        return "\n".join(self.lines)

    @property
    def caption(self) -> str:
        first, last = self.numbers[0], self.numbers[-1]
        where = f"line {first}" if first == last else f"lines {first}\u2013{last}"
        note = ", docstring omitted" if self.docstring_omitted else ""
        return f"{self.path}, {where}: {self.name}{note}"

    def __str__(self) -> str:
        width = len(str(self.numbers[-1]))
        body = "\n".join(
            f"{n:>{width}}  {line}".rstrip() for n, line in self._numbered()
        )
        return f"{self.caption}\n{body}"

    def _numbered(self):
        """(number, line) pairs; a gap in the numbers (an omitted docstring) becomes an
        empty row numbered with the ellipsis, so that no number is skipped silently."""
        previous = None
        for n, line in zip(self.numbers, self.lines):
            if previous is not None and n != previous + 1:
                yield "\u22ee", ""
            yield n, line
            previous = n

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        rows = list(self._numbered())
        code = "\n".join(line for _, line in rows)
        formatter = HtmlFormatter(nowrap=True, noclasses=True, style="default")
        body = highlight(code, PythonLexer(stripnl=False), formatter).rstrip("\n")
        numbers = "\n".join(str(n) for n, _ in rows)
        pre = (
            "margin:0;padding:0.5em;line-height:1.35;font-size:0.85em;background:none;"
        )
        return (
            '<figure class="helpers-source" style="margin:0.5em 0;">'
            '<figcaption style="font-size:0.85em;margin-bottom:0.2em;">'
            f"<code>{html.escape(self.caption)}</code></figcaption>"
            '<div style="display:flex;background:#f8f8f8;color:#000;'
            'border:1px solid #ddd;border-radius:4px;overflow-x:auto;">'
            f'<pre style="{pre}color:#999;text-align:right;user-select:none;'
            f'border-right:1px solid #ddd;">{numbers}</pre>'
            f'<pre style="{pre}">{body}</pre></div></figure>'
        )


def _module_path(obj) -> str:
    """The source file of ``obj``, relative to the folder of its top-level package."""
    file = Path(inspect.getsourcefile(obj) or inspect.getfile(obj)).resolve()
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    package = (getattr(module, "__name__", "") or "").split(".")[0]
    top = sys.modules.get(package)
    if top is not None and getattr(top, "__file__", None):
        root = Path(top.__file__).resolve().parent.parent
        try:
            return file.relative_to(root).as_posix()
        except ValueError:
            pass
    return file.name


def _docstring_lines(source: str) -> range | None:
    """0-based indices of the lines of the docstring of the def/class in ``source``."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return None
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    if not tree.body or not isinstance(tree.body[0], defs):
        return None
    first = tree.body[0].body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if not is_doc or not isinstance(first.value.value, str):
        return None
    return range(first.lineno - 1, first.end_lineno)


def listing(obj, *, docstring: bool = True) -> Listing:
    """The source of a function, method or class defined in a ``.py`` file.

    ``docstring=False`` leaves out the object's own docstring (the numbers of the
    remaining lines stay those of the file). A bound method or a ``functools.partial``
    is shown as the function it wraps.
    """
    target = getattr(obj, "func", obj)  # functools.partial
    target = getattr(target, "__func__", target)  # bound method, classmethod
    name = getattr(target, "__qualname__", None) or getattr(
        target, "__name__", repr(obj)
    )
    try:
        lines, start = inspect.getsourcelines(target)
    except (TypeError, OSError) as e:
        raise TypeError(
            f"show_source needs a function, method or class defined in a .py file; "
            f"{obj!r} has no source file ({e}). Pass the Python function itself, e.g. "
            f"show_source(helpers.fit)."
        ) from None
    text = textwrap.dedent("".join(lines)).rstrip("\n")
    kept = text.split("\n")
    numbers = list(range(max(start, 1), max(start, 1) + len(kept)))
    omitted = False
    if not docstring:
        doc = _docstring_lines(text)
        if doc is not None:
            kept = [ln for i, ln in enumerate(kept) if i not in doc]
            numbers = [n for i, n in enumerate(numbers) if i not in doc]
            omitted = True
    return Listing(name, _module_path(target), tuple(kept), tuple(numbers), omitted)


def _ipython_shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def show_source(*objects, docstring: bool = True) -> None:
    """Display the source of each object, with its file and line numbers as a caption.

    In IPython (a notebook, the rendered book) the code is syntax-highlighted;
    elsewhere it is printed as plain text. ``docstring=False`` leaves the objects'
    own docstrings out. Raises ``TypeError`` for an object without Python source.
    """
    if not objects:
        raise TypeError(
            "show_source needs at least one object, e.g. show_source(helpers.fit)"
        )
    listings = [listing(obj, docstring=docstring) for obj in objects]
    if _ipython_shell() is None:
        print("\n\n".join(str(item) for item in listings))
        return
    from IPython.display import display

    display(*listings)
