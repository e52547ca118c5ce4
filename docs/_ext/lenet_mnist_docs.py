"""Sphinx extension of the lenet-mnist docs: pages generated from the code itself.

* ``.. lenet-mnist-cli::`` renders the ``lenet-mnist`` command's reference from
  :func:`lenet_mnist.cli.build_parser`, so it cannot drift from the real parser.
* ``.. lenet-mnist-api::`` documents every module that defines a name of
  ``lenet_mnist.__all__`` (read at build time, so a newly exported name shows up by
  itself) and fails the build when an exported name would be left out.
* References to ``lenet_mnist.NAME`` (and to a bare ``NAME`` from another module's
  docstring) resolve to where ``NAME`` is defined and documented.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
from collections.abc import Iterator
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

# The API page follows the tutorial's order; modules added later are appended.
_MODULE_ORDER = (
    "gpu",
    "data",
    "data.mnist",
    "data.specs",
    "data.locate",
    "data.download",
    "data.idx",
    "report",
    "report.figures",
    "report.written",
    "report.canvas",
    "models",
    "models.registry",
    "models.networks",
    "models.lenet",
    "models.batch_norm",
    "recipes",
    "training",
    "training.train",
    "training.pipeline",
    "training.monitor",
    "training.determinism",
    "training.checkpoint",
    "training.distribute",
    "training.multiworker",
    "training.history",
    "images",
    "images.prepare",
    "images.batch",
    "images.strip",
    "inference",
    "evaluation",
    "models.saving",
    "models.pretrained",
    "export",
    "errors",
)
_HELP_WIDTH = "88"


def _locations() -> dict[str, str]:
    package = importlib.import_module("lenet_mnist")
    return {
        name: module.removeprefix("lenet_mnist.") for name, module in package._LOCATIONS.items()
    }


def _public_modules() -> list[str]:
    """The package's public submodules: every ``lenet_mnist.X`` without a leading ``_``.

    The command line has its own page, so ``cli`` (and ``__main__``) are left out.
    """
    package = importlib.import_module("lenet_mnist")
    return [
        info.name.removeprefix("lenet_mnist.")
        for info in pkgutil.walk_packages(package.__path__, "lenet_mnist.")
        if not any(part.startswith("_") for part in info.name.split("."))
        and info.name.split(".")[1] != "cli"
    ]


def _first_line(obj: object) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class ApiDirective(SphinxDirective):
    """Document every public module, with a summary table of ``lenet_mnist.__all__``."""

    def run(self) -> list[nodes.Node]:
        package = importlib.import_module("lenet_mnist")
        locations = _locations()
        exported = [name for name in package.__all__ if name != "__version__"]
        for name in exported:
            module_name = locations.get(name)
            if module_name is None:
                logger.warning("lenet_mnist.%s is in __all__ but not in _LOCATIONS", name)
                continue
            module = importlib.import_module(f"lenet_mnist.{module_name}")
            if name not in getattr(module, "__all__", ()):
                logger.warning(
                    "lenet_mnist.%s is exported but missing from lenet_mnist.%s.__all__, "
                    "so the API reference would leave it out",
                    name,
                    module_name,
                )
        public = _public_modules()
        modules = [m for m in _MODULE_ORDER if m in public]
        modules += sorted(set(public) - set(modules))

        lines = [
            "Every name below is importable from the package itself",
            "(``from lenet_mnist import load_mnist``); each is documented in the module",
            "that defines it.",
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 30 20 50",
            "",
            "   * - Name",
            "     - Module",
            "     - Summary",
        ]
        for name in sorted(exported, key=lambda n: (modules.index(locations[n]), n)):
            module_name = locations[name]
            obj = getattr(importlib.import_module(f"lenet_mnist.{module_name}"), name)
            lines += [
                f"   * - :py:obj:`lenet_mnist.{name}`",
                f"     - ``{module_name}``",
                f"     - {_first_line(obj)}",
            ]
        lines.append("")
        for module_name in modules:
            title = f"``lenet_mnist.{module_name}``"
            lines += [
                title,
                "-" * len(title),
                "",
                f".. automodule:: lenet_mnist.{module_name}",
                "   :members:",
                # Documented where defined: a package's re-exports are not repeated.
                "   :ignore-module-all:",
                "   :show-inheritance:",
                "",
            ]
        return _parse(self, lines)


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


def _help_text(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {**vars(action), "default": action.default}
    return text


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


def _resolve_exported(
    app: Sphinx, env: Any, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    """Resolve ``lenet_mnist.NAME`` and bare names to where they are documented.

    ``lenet_mnist.NAME`` goes to the module that defines ``NAME`` (``_LOCATIONS``); a
    name that is still unknown, such as ``as_model_input`` written in another module's
    docstring, goes to the one documented ``lenet_mnist.*.NAME`` when there is exactly
    one (an ambiguous name stays a broken reference, so the build fails).
    """
    if node.get("refdomain") != "py":
        return None
    target: str = node["reftarget"]
    domain = env.get_domain("py")
    head, _, rest = target.removeprefix("lenet_mnist.").partition(".")
    module_name = _locations().get(head)
    candidates: list[str] = []
    if module_name is not None:
        candidates = [f"lenet_mnist.{module_name}.{head}" + (f".{rest}" if rest else "")]
    else:
        suffix = "." + target.removeprefix("lenet_mnist.")
        candidates = [
            name
            for name in domain.objects
            if name.startswith("lenet_mnist.") and name.endswith(suffix)
        ]
    if len(candidates) != 1 or candidates[0] == target:
        return None
    resolved: nodes.Element | None = domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], candidates[0], node, contnode
    )
    return resolved


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
    app.add_directive("lenet-mnist-api", ApiDirective)
    app.add_directive("lenet-mnist-cli", CliDirective)
    app.connect("missing-reference", _resolve_exported)
    app.connect("autodoc-process-docstring", _hide_summary_colons, priority=400)
    app.connect("autodoc-process-docstring", _restore_summary_colons, priority=600)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
