"""Sphinx directive ``mmcontext-cli``: the command-line reference, read from ``mmcontext.cli.build_parser()``.

The page cannot drift from the code: every subcommand, argument, default and help text comes from the argparse
parser the ``mmcontext`` command runs. No dependency beyond Sphinx and docutils.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from docutils import nodes
from docutils.parsers.rst import Directive


@dataclass
class Argument:
    """One argument of a (sub)command, as the reference shows it."""

    names: str  # "--model-out" or "input"
    metavar: str  # "MODEL_OUT", "{genes,pca}", "" for flags
    default: str  # "" when there is none worth showing
    required: bool
    help: str


@dataclass
class Command:
    """A command or subcommand: its name, summary, usage line and arguments."""

    name: str
    help: str
    usage: str
    arguments: list[Argument] = field(default_factory=list)


def _argument(action: argparse.Action) -> Argument:
    if action.option_strings:
        names = ", ".join(action.option_strings)
        takes_value = action.nargs != 0
    else:
        names, takes_value = action.dest, True
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    elif takes_value and action.option_strings:
        metavar = action.metavar or action.dest.upper()
    else:
        metavar = ""
    shown = takes_value and not any(action.default is v for v in (None, False, argparse.SUPPRESS))
    text = (action.help or "").replace("%(default)s", str(action.default))
    return Argument(names, metavar, str(action.default) if shown else "", bool(action.required), text)


def cli_spec(parser: argparse.ArgumentParser) -> list[Command]:
    """The top-level command and each subcommand, in the order the parser defines them."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    skip = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    top = Command(
        parser.prog,
        " ".join((parser.description or "").replace("``", "").split()),
        _usage(parser),
        [_argument(a) for a in parser._actions if not isinstance(a, skip)],
    )
    commands = [top]
    for sub in subparsers:
        helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
        for name, p in sub.choices.items():
            arguments = [_argument(a) for a in p._actions if not isinstance(a, skip)]
            commands.append(Command(f"{parser.prog} {name}", helps.get(name, ""), _usage(p), arguments))
    return commands


def _usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().removeprefix("usage: ").split())


def _table(header: list[str], rows: list[list[nodes.Node]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["mmcontext-cli"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    head += _row([nodes.paragraph(text=h) for h in header])
    body = nodes.tbody()
    group += body
    for row in rows:
        body += _row(row)
    return table


def _row(cells: list[nodes.Node]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += cell
        row += entry
    return row


def _literal_paragraph(*parts: str) -> nodes.paragraph:
    paragraph = nodes.paragraph()
    for i, part in enumerate(p for p in parts if p):
        if i:
            paragraph += nodes.Text(" ")
        paragraph += nodes.literal(text=part)
    return paragraph


def command_nodes(command: Command) -> nodes.section:
    """One section per command: summary, usage block, argument table."""
    section = nodes.section(ids=[nodes.make_id(command.name)], names=[nodes.fully_normalize_name(command.name)])
    section += nodes.title(text=command.name)
    if command.help:
        section += nodes.paragraph(text=command.help)
    section += nodes.literal_block(text=command.usage, language="text")
    rows = []
    for arg in command.arguments:
        what = arg.help + (" Required." if arg.required and arg.names.startswith("-") else "")
        rows.append(
            [
                _literal_paragraph(arg.names, arg.metavar),
                _literal_paragraph(arg.default) if arg.default else nodes.paragraph(text=""),
                nodes.paragraph(text=what.strip()),
            ]
        )
    if rows:
        section += _table(["argument", "default", "meaning"], rows, [30, 15, 55])
    return section


class CliReference(Directive):
    """``.. mmcontext-cli::`` (``{mmcontext-cli}`` in myst): one section per command of ``mmcontext``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from mmcontext.cli import build_parser

        return [command_nodes(c) for c in cli_spec(build_parser())]


def setup(app):
    app.add_directive("mmcontext-cli", CliReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
