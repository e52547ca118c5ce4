"""Sphinx extension of the lenet-mnist docs: pages generated from the code itself.

* The API reference (``api.rst``) has one autosummary page per name of
  ``lenet_mnist.__all__`` and one per public module; the build fails when a name or
  a module has no page (:func:`_check_api_complete`), so the tables cannot drift from
  the package.
* ``.. lenet-mnist-module:: NAME`` (the module template) documents what a module
  defines: its docstring, links to the pages of the exported names it defines, and
  its other public names in full.
* ``.. lenet-mnist-data:: NAME`` documents a constant; a value too long to read as a
  repr is hidden, and the tables of records (:data:`lenet_mnist.RECIPES`,
  ``DATASETS``) are rendered as tables.
* ``.. lenet-mnist-cli::`` renders the ``lenet-mnist`` command's reference from
  :func:`lenet_mnist.cli.build_parser`, so it cannot drift from the real parser.
* References resolve to where a name is documented: ``lenet_mnist.data.mnist.load_mnist``
  and a bare ``load_mnist`` to the page of ``lenet_mnist.load_mnist``; NumPy's,
  TensorFlow's and Keras's private class paths (``keras.src.models.model.Model``) to
  their public names, linked through the offline inventories of ``docs/_inv/`` or
  left as plain text.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import os
import pkgutil
import re
import types
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.ext import intersphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

_HELP_WIDTH = "88"
# A constant whose repr is longer than this is shown by its docstring (and a table) only.
_MAX_VALUE_CHARS = 80


def _locations() -> dict[str, str]:
    """Exported name -> the module that defines it (the facade's table)."""
    package = importlib.import_module("lenet_mnist")
    return dict(package._LOCATIONS)


def _exported() -> list[str]:
    package = importlib.import_module("lenet_mnist")
    return list(package.__all__)


def _public_modules() -> list[str]:
    """The package's public submodules: every ``lenet_mnist.X`` without a leading ``_``.

    The command line has its own page, so ``cli`` (and ``__main__``) are left out.
    """
    package = importlib.import_module("lenet_mnist")
    return [
        info.name
        for info in pkgutil.walk_packages(package.__path__, "lenet_mnist.")
        if not any(part.startswith("_") for part in info.name.split("."))
        and info.name.split(".")[1] != "cli"
    ]


def _defined_names(module: types.ModuleType) -> list[str]:
    """The public names a module's own top-level statements define, in source order."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):  # pragma: no cover - a module without its source
        return []
    names: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in dict.fromkeys(names) if not n.startswith("_")]


def _first_line(obj: object) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _autodoc_lines(fullname: str, obj: object) -> list[str]:
    """The autodoc directive documenting ``fullname`` in full."""
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return [f".. autoexception:: {fullname}", "   :show-inheritance:", ""]
    if inspect.isclass(obj):
        return [f".. autoclass:: {fullname}", "   :members:", "   :show-inheritance:", ""]
    if inspect.isroutine(obj):
        return [f".. autofunction:: {fullname}", ""]
    return _data_lines(fullname, obj)


def _data_lines(fullname: str, value: object) -> list[str]:
    lines = [f".. autodata:: {fullname}"]
    table = _value_table(fullname, value)
    if table or len(repr(value)) > _MAX_VALUE_CHARS:
        lines.append("   :no-value:")
    lines.append("")
    lines += [f"   {line}".rstrip() for line in table]
    return lines


def _cell(value: object) -> str:
    if isinstance(value, str):
        return value if " " in value else f"``{value}``"
    return f"``{value!r}``"


def _list_table(header: list[str], rows: list[list[str]], css: str = "") -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1"]
    if css:
        lines.append(f"   :class: {css}")
    lines.append("")
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    lines.append("")
    return lines


def _value_table(fullname: str, value: object) -> list[str]:
    """A readable table of a mapping of names to descriptions or to records, or ``[]``."""
    if not isinstance(value, Mapping) or not value:
        return []
    records = list(value.values())
    if all(isinstance(key, str) and isinstance(r, str) for key, r in value.items()):
        rows = [[f"``{key!r}``", text] for key, text in value.items()]
        return ["", *_list_table(["Name", "Description"], rows, "lenet-records")]
    if not all(dataclasses.is_dataclass(r) and not isinstance(r, type) for r in records):
        return []
    if fullname.endswith(".DATASETS"):
        return _datasets_table(value)
    # One column per record, one row per field: a handful of records with many fields.
    fields = [f.name for f in dataclasses.fields(records[0]) if f.name != "name"]
    rows = [[f"``{field}``", *(_cell(getattr(r, field)) for r in records)] for field in fields]
    return ["", *_list_table(["", *(f"``{key}``" for key in value)], rows, "lenet-records")]


def _datasets_table(datasets: Mapping[str, Any]) -> list[str]:
    overview = [
        [f"``{name}``", f"``{spec.env_var}``", ", ".join(spec.class_names)]
        for name, spec in datasets.items()
    ]
    mirrors = [
        f"* Mirrors of ``{name}``: " + ", ".join(f"``{m}``" for m in spec.mirrors)
        for name, spec in datasets.items()
    ]
    files = [
        [f"``{name}``", f"``{file.name}``", f"``{file.shape}``", f"``{file.sha256}``"]
        for name, spec in datasets.items()
        for file in spec.files.values()
    ]
    return [
        "",
        *_list_table(["Dataset", "Environment variable", "Classes"], overview),
        *mirrors,
        "",
        *_list_table(["Dataset", "File", "Shape", "SHA-256"], files, "lenet-hashes"),
    ]


class DataDirective(SphinxDirective):
    """Document one constant (``lenet_mnist.RECIPES``): its docstring and a readable value."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        fullname = self.arguments[0]
        module_name, _, name = fullname.rpartition(".")
        value = getattr(importlib.import_module(module_name), name)
        return _parse(self, _data_lines(fullname, value))


class ModuleDirective(SphinxDirective):
    """Document one public module: docstring, its exported names' pages, the rest in full."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        module = importlib.import_module(module_name)
        locations = _locations()
        # The tables name this module's own names relative to it (autosummary refuses
        # a full name that repeats the current module).
        lines = [f"Module ``{module_name}``.", "", f".. automodule:: {module_name}", ""]
        children = sorted(m for m in _public_modules() if m.rpartition(".")[0] == module_name)
        if children:
            lines += _summary(
                "Modules of this package", [m.rpartition(".")[2] for m in children], ""
            )
        exported = [n for n, m in locations.items() if m == module_name]
        if exported:
            lines += _summary(
                "Importable from ``lenet_mnist``",
                [f"lenet_mnist.{n}" for n in exported],
                ":nosignatures:",
            )
        own = [n for n in _defined_names(module) if n not in exported]
        if own:
            lines += _summary("Also defined here", own, ":nosignatures:")
            for name in own:
                lines += _autodoc_lines(f"{module_name}.{name}", getattr(module, name))
        return _parse(self, lines)


def _summary(title: str, names: list[str], option: str) -> list[str]:
    lines = [f".. rubric:: {title}", "", ".. autosummary::"]
    if option:
        lines.append(f"   {option}")
    return [*lines, "", *(f"   {name}" for name in names), ""]


def _remove_stale_pages(app: Sphinx) -> None:
    """Delete generated pages of names the package no longer has.

    Autosummary rewrites the pages of ``generated/`` but never removes one, and a page
    left over from a renamed function would fail the build (in no toctree). Runs before
    autosummary, so the current pages keep their times and incremental builds stay so.
    """
    generated = Path(app.srcdir) / "generated"
    if not generated.is_dir():
        return
    current = {f"lenet_mnist.{name}" for name in _exported()} | set(_public_modules())
    for page in generated.glob("*.rst"):
        if page.stem not in current:
            page.unlink()


def _check_api_complete(app: Sphinx, env: Any) -> None:
    """Fail the build when a name of ``lenet_mnist.__all__`` or a module has no page."""
    domain = env.get_domain("py")
    for name in _exported():
        if f"lenet_mnist.{name}" not in domain.objects:
            logger.warning(
                "lenet_mnist.%s is in lenet_mnist.__all__ but has no page: add it to a "
                "table of docs/api.rst",
                name,
            )
    for module_name in _public_modules():
        if module_name not in domain.modules:
            logger.warning(
                "%s is a public module but has no page: add it to the modules table of "
                "docs/api.rst",
                module_name,
            )


def _parse(directive: SphinxDirective, lines: list[str]) -> list[nodes.Node]:
    container = nodes.section()
    container.document = directive.state.document
    content = StringList(lines, source=directive.get_source_info()[0])
    nested_parse_with_titles(directive.state, content, container)
    return list(container.children)


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, Any]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                yield name, helps.get(name, ""), subparser


# An option named in a help text (``--recipe``): shown as code, so that the docs'
# smart quotes do not turn its ``--`` into a dash.
_OPTION_IN_TEXT = re.compile(r"(?<![\w`-])(--?[a-z][\w-]*)")


def _help_text(action: argparse.Action) -> str:
    text = action.help or ""
    if "%" in text:  # argparse formats every help text: %(default)s, and %% for %
        text = text % {**vars(action), "default": action.default}
    return _OPTION_IN_TEXT.sub(r"``\1``", text)


def _option_lines(program: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f".. program:: {program}", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            metavar = ""
            if action.nargs != 0:
                metavar = " " + (action.metavar or action.dest.upper())
            names = ", ".join(f"{opt}{metavar}" for opt in action.option_strings)
        else:
            names = str(action.metavar or action.dest)
        lines += [f".. option:: {names}", "", f"   {_help_text(action)}", ""]
    return lines


def _usage_lines(parser: argparse.ArgumentParser) -> list[str]:
    usage = parser.format_usage().splitlines()
    return [".. code-block:: text", "", *(f"   {line}".rstrip() for line in usage), ""]


class CliDirective(SphinxDirective):
    """Render the reference of the ``lenet-mnist`` command from its parser."""

    def run(self) -> list[nodes.Node]:
        from lenet_mnist.cli import build_parser

        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = _HELP_WIDTH  # argparse wraps usage to the terminal width
        try:
            parser = build_parser()
            commands = list(_subcommands(parser))
            lines = _usage_lines(parser)
            lines += [parser.description or "", ""]
            lines += [f"* ``{name}``: {summary}" for name, summary, _ in commands]
            lines.append("")
            lines += _option_lines(parser.prog, parser)
            for name, summary, subparser in commands:
                title = f"``{parser.prog} {name}``"
                lines += [title, "-" * len(title), ""]
                lines += _usage_lines(subparser)
                lines += [subparser.description or summary, ""]
                lines += _option_lines(subparser.prog, subparser)
        finally:
            if previous is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = previous
        return _parse(self, lines)


# Third-party names as annotations and bases spell them (the abbreviations of the
# source, private class paths) -> the public name of the online reference.
_PREFIXES = (("np.", "numpy."), ("npt.", "numpy.typing."), ("tensorflow.", "tf."))
_PUBLIC_NAMES = {
    "keras.src.models.model.Model": "keras.Model",
    "keras.src.models.sequential.Sequential": "keras.Sequential",
    "keras.src.layers.layer.Layer": "keras.layers.Layer",
    "keras.src.layers.normalization.batch_normalization.BatchNormalization": (
        "keras.layers.BatchNormalization"
    ),
    "keras.src.callbacks.callback.Callback": "keras.callbacks.Callback",
    "keras.src.callbacks.history.History": "keras.callbacks.History",
    "tf.python.framework.tensor.Tensor": "tf.Tensor",
    "tf.python.eager.context.PhysicalDevice": "tf.config.PhysicalDevice",
    "tf.python.distribute.distribute_lib.Strategy": "tf.distribute.Strategy",
    "tf.python.data.ops.dataset_ops.DatasetV2": "tf.data.Dataset",
    # Names imported under ``if TYPE_CHECKING:`` stay as written in annotations.
    "Path": "pathlib.Path",
    "Figure": "matplotlib.figure.Figure",
    "Axes": "matplotlib.axes.Axes",
    "PhysicalDevice": "tf.config.PhysicalDevice",
    "NDArray": "numpy.typing.NDArray",
    "ArrayLike": "numpy.typing.ArrayLike",
    "DTypeLike": "numpy.typing.DTypeLike",
    "AbstractContextManager": "contextlib.AbstractContextManager",
}


def _public_target(target: str) -> str:
    for prefix, full in _PREFIXES:
        if target.startswith(prefix):
            target = full + target.removeprefix(prefix)
    return _PUBLIC_NAMES.get(target, target)


def _own_candidates(target: str, domain: Any) -> list[str]:
    """Where a ``lenet_mnist`` name written another way is documented."""
    locations = _locations()
    path = target.removeprefix("lenet_mnist.")
    parts = path.split(".")
    # lenet_mnist.MODULE.NAME[.rest] (or a bare NAME[.rest]) of an exported name: its page.
    for i, part in enumerate(parts):
        module = "lenet_mnist." + ".".join(parts[:i]) if i else None
        if part in locations and (module is None or locations[part] == module):
            return [".".join(["lenet_mnist", *parts[i:]])]
    suffix = "." + path
    return [n for n in domain.objects if n.startswith("lenet_mnist.") and n.endswith(suffix)]


def _resolve(app: Sphinx, env: Any, node: Any, contnode: nodes.Element) -> nodes.Element | None:
    """Resolve a reference that names a documented object another way (see the top)."""
    if node.get("refdomain") != "py":
        return None
    target: str = node["reftarget"]
    domain = env.get_domain("py")
    candidates = _own_candidates(target, domain)
    if len(candidates) == 1 and candidates[0] != target:
        resolved: nodes.Element | None = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], candidates[0], node, contnode
        )
        if resolved is not None:
            return resolved
    public = _public_target(target)
    if public == target:
        return None
    other = node.deepcopy()
    other["reftarget"] = public
    linked: nodes.Element | None = intersphinx.missing_reference(app, env, other, contnode)
    if linked is None and public.split(".")[0] in ("keras", "tf", "numpy", "matplotlib"):
        # Not in an inventory: the public name as plain text, never a private path.
        return nodes.literal(public, public.rpartition(".")[2])
    return linked


def _public_bases(app: Sphinx, name: str, obj: object, options: Any, bases: list[Any]) -> None:
    """Show a class's third-party bases by their public names (``keras.Model``)."""
    for i, base in enumerate(bases):
        path = f"{getattr(base, '__module__', '')}.{getattr(base, '__qualname__', '')}"
        public = _public_target(path)
        if public != path:
            bases[i] = f":py:class:`{public}`"


_UNPARSED_NAME = re.compile(r"~([A-Za-z_][\w.]*)")


def _link_unparsed_types(app: Sphinx, doctree: nodes.document) -> None:
    """Link the names Sphinx leaves as text in a type such as ``Literal['a'] | str | X``.

    Sphinx stops parsing such a union after the ``Literal``; the rest stays emphasised
    text, a class still spelled ``~module.Name``. Each becomes the reference it should
    have been (shown by its short name), resolved like every other.
    """
    from sphinx.addnodes import pending_xref

    for node in list(doctree.findall(nodes.emphasis)):
        match = _UNPARSED_NAME.fullmatch(node.astext().strip())
        if match is None:
            continue
        target = match.group(1)
        ref = pending_xref("", refdomain="py", reftype="class", reftarget=target, refexplicit=False)
        ref["refdoc"] = app.env.docname
        ref += nodes.emphasis(target, target.rpartition(".")[2])
        node.replace_self(ref)


def _attribute_doc(
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    """Give ``lenet_mnist.RECIPES`` the ``#:`` comment written where it is defined."""
    if what != "data" or not name.startswith("lenet_mnist."):
        return
    attr = name.rpartition(".")[2]
    module_name = _locations().get(attr)
    if attr == "__version__":
        module_name = "lenet_mnist._version"
    if module_name is None or name != f"lenet_mnist.{attr}":
        return
    docs = ModuleAnalyzer.for_module(module_name).find_attr_docs().get(("", attr))
    if docs:
        lines[:] = [*docs, ""]
    elif attr == "__version__":
        # No ``#:`` comment there: the version module's docstring says what it is, not
        # the docstring of ``str`` that autodoc would show instead.
        doc = importlib.import_module(module_name).__doc__ or ""
        lines[:] = [*inspect.cleandoc(doc).splitlines(), ""]


# A colon outside ``code`` and :role:`targets`, and what stands in for it meanwhile.
_CODE_OR_XREF = re.compile(r"(?::\w+:)?`[^`]*`+")
_BARE_COLON = re.compile(r"(?<!:):(?!:)")
_COLON_STAND_IN = "\ue000"


def _hide_summary_colons(
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    """Stop napoleon from reading ``Summary: more`` as ``type: description``.

    Napoleon takes the first line of a data, attribute or property docstring as
    ``type: description`` whenever it holds a colon; this library's types come from
    annotations, so such a colon is always prose. Runs before napoleon, which cannot
    be told not to; :func:`_restore_summary_colons` undoes it afterwards.
    """
    if what not in ("data", "attribute", "property") or not lines:
        return
    parts = re.split(f"({_CODE_OR_XREF.pattern})", lines[0])
    lines[0] = "".join(
        part if _CODE_OR_XREF.fullmatch(part) else _BARE_COLON.sub(_COLON_STAND_IN, part)
        for part in parts
    )


def _restore_summary_colons(
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    lines[:] = [line.replace(_COLON_STAND_IN, ":") for line in lines]


def _skip_namedtuple_fields(
    app: Sphinx, what: str, name: str, obj: object, skip: bool, options: Any
) -> bool | None:
    """Leave out the ``Alias for field number N`` members; the class docstring covers them."""
    doc = getattr(obj, "__doc__", None) or ""
    if what == "class" and doc.startswith("Alias for field number"):
        return True
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("lenet-mnist-cli", CliDirective)
    app.add_directive("lenet-mnist-module", ModuleDirective)
    app.add_directive("lenet-mnist-data", DataDirective)
    app.connect("missing-reference", _resolve)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("autodoc-process-docstring", _attribute_doc, priority=300)
    app.connect("builder-inited", _remove_stale_pages, priority=400)
    app.connect("env-check-consistency", _check_api_complete)
    app.connect("doctree-read", _link_unparsed_types)
    app.connect("autodoc-process-docstring", _hide_summary_colons, priority=400)
    app.connect("autodoc-process-docstring", _restore_summary_colons, priority=600)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    return {
        "version": "1",
        # A changed extension re-reads every page (the pages it writes are generated).
        "env_version": zlib.crc32(Path(__file__).read_bytes()),
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
