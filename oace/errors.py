"""One error family for the whole toolkit.

Every error a user can cause (bad file, bad shape, missing tool) is a ToolkitError with a one-line,
actionable message naming the file and what is wrong. The CLI prints it on one line and exits 2.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """A user-facing error: its message is printed as-is, without a traceback."""


class InputError(ToolkitError):
    """An input tensor, image, click or file has the wrong dtype, shape, range or content."""


class CheckpointError(ToolkitError):
    """A checkpoint file is missing, corrupt, or does not describe a registered network."""


class NotBuiltError(ToolkitError):
    """A pipeline stage that does not exist yet in this version of the toolkit."""
