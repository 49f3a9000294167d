"""What the subcommands share: option defaults read where they live (a config dataclass's field or a
function's parameter), never retyped in a parser, and a parser built from a config dataclass.

Parsing stays light: the configs' modules load PyTorch, so an option whose default lives there is
declared with `default=UNSET` (left out, it is absent from the parsed arguments and the config or
function keeps its own default), and `--help` looks the defaults up only when it is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import typing
from typing import Any, Callable

UNSET = argparse.SUPPRESS


def default_of(owner: Any, name: str) -> Any:
    """The default of `name`: a dataclass field's (`owner` a dataclass) or a parameter's (`owner` a function)."""
    if dataclasses.is_dataclass(owner):
        field = owner.__dataclass_fields__[name]
        return field.default_factory() if field.default is dataclasses.MISSING else field.default  # type: ignore[misc]
    return inspect.signature(owner).parameters[name].default


def given(args: argparse.Namespace, **names: str) -> dict[str, Any]:
    """The UNSET options the command line gave, keyed for the callee: given(args, count="calib_count")
    -> {"count": args.calib_count} when --calib-count was passed, {} when not."""
    values = vars(args)
    return {key: values[dest] for key, dest in names.items() if dest in values}


class DefaultsHelp(argparse.HelpFormatter):
    """`--help` that appends "(default X)" to each UNSET option, X from `defaults()` (dest -> value),
    called once and only when the help is printed."""

    def __init__(self, prog: str, *, defaults: Callable[[], dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(prog, **kwargs)
        self._lookup = defaults
        self._defaults: dict[str, Any] | None = None

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is not UNSET or not action.option_strings:
            return text
        if self._defaults is None:
            self._defaults = self._lookup()
        value = self._defaults.get(action.dest)
        if value is None or isinstance(value, bool):  # a switch, or "none" whose meaning the help says
            return text
        if isinstance(value, (tuple, list)):
            value = ",".join(map(str, value)) or "none"
        return f"{text} (default {str(value).replace('%', '%%')})"  # the help text is argparse-escaped already


def defaults_help(defaults: Callable[[], dict[str, Any]]) -> Callable[..., DefaultsHelp]:
    """A formatter_class for add_parser: DefaultsHelp with this lookup."""
    return functools.partial(DefaultsHelp, defaults=defaults)


def add_config_options(parser: argparse.ArgumentParser, config: type) -> None:
    """One option per field of the dataclass `config`, dest = the field's name: --kebab-case (metadata
    "flag" renames it), the field's type and default, metadata "help", "choices", "metavar"; a field
    without a default is required ("positional": an argument); a bool field is a switch, --name when it
    defaults to False, --no-name when to True."""
    hints = typing.get_type_hints(config)
    for field in dataclasses.fields(config):
        meta = dict(field.metadata)
        settings = {"help": meta.get("help", "").replace("%", "%%"),
                    **{k: meta[k] for k in ("choices", "metavar") if k in meta}}
        if meta.get("positional"):
            parser.add_argument(field.name, type=_scalar(hints[field.name]), **settings)
            continue
        flag = "--" + meta.get("flag", field.name).replace("_", "-")
        if hints[field.name] is bool:
            off = field.default is True
            parser.add_argument(flag.replace("--", "--no-", 1) if off else flag, dest=field.name,
                                action="store_false" if off else "store_true",
                                **{**settings, "help": f"turn off: {settings['help']}" if off else settings["help"]})
            continue
        if field.default is dataclasses.MISSING:
            settings["required"] = True
        elif field.default is not None:
            settings["help"] += " (default %(default)s)"
        parser.add_argument(flag, dest=field.name, type=_scalar(hints[field.name]),
                            default=None if field.default is dataclasses.MISSING else field.default, **settings)


def _scalar(tp: Any) -> type:
    """int / float / str from a field's type (`int | None` -> int)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    tp = args[0] if len(args) == 1 else tp
    if tp not in (int, float, str):
        raise TypeError(f"no command-line type for a field of type {tp!r}")
    return tp
