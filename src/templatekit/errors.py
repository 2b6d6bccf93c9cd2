"""Exceptions raised by templatekit, one class per failure a user can act on.

Each class also inherits the closest builtin (``FileNotFoundError``, ``PermissionError``,
...) so callers can catch either.  Attributes carry the structured facts (repo id, path,
line); ``str(error)`` is a single line fit for a terminal.
"""

from __future__ import annotations


class TemplatekitError(Exception):
    """Base class of every error templatekit raises on purpose."""


class SourceError(TemplatekitError):
    """A chat template could not be obtained from a source."""


class _SourceReferenceError(SourceError):
    """A source error about one reference (``source``); ``str()`` is the message alone.

    The builtin bases (``OSError`` subclasses) would otherwise format ``str()`` as
    ``[Errno ...]`` tuples.
    """

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source

    def __str__(self) -> str:
        return str(self.args[0])


class SourceNotFoundError(_SourceReferenceError, FileNotFoundError):
    """A repository, revision, file or path does not exist."""

    def __init__(self, message: str, *, source: str, revision: str | None = None, filename: str | None = None) -> None:
        super().__init__(message, source=source)
        self.revision = revision
        self.filename = filename


class GatedRepoError(_SourceReferenceError, PermissionError):
    """The repository needs an access grant and a token that has it."""


class OfflineError(_SourceReferenceError, ConnectionError):
    """Offline mode (or no network) and the file is not in the local cache."""


class MalformedFileError(SourceError, ValueError):
    """A JSON or GGUF file could not be decoded, or does not have the expected shape."""

    def __init__(self, message: str, *, path: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.column = column


class UnsupportedVersionError(MalformedFileError):
    """A file in a format version templatekit does not read (a GGUF file newer than ``gguf`` knows)."""

    def __init__(self, message: str, *, path: str, version: int) -> None:
        super().__init__(message, path=path)
        self.version = version


class NoChatTemplateError(SourceError, LookupError):
    """The source exists but carries no chat template."""


class UnknownTemplateNameError(SourceError, LookupError):
    """A named template was asked for that the source does not have."""

    def __init__(self, message: str, *, name: str, available: tuple[str, ...]) -> None:
        super().__init__(message)
        self.name = name
        self.available = available


class TemplateSyntaxError(TemplatekitError, ValueError):
    """The template is not valid Jinja for the server's environment."""

    def __init__(self, message: str, *, line: int | None, name: str | None = None) -> None:
        location = f"{name or '<template>'}:{line}" if line else (name or "<template>")
        super().__init__(f"{location}: invalid Jinja: {message}")
        self.message = message
        self.line = line
        self.name = name


class TokenizerError(SourceError):
    """A tokenizer could not be loaded from the given source."""


class OutputError(TemplatekitError, OSError):
    """A result could not be written where the user asked."""


class EngineUnavailableError(TemplatekitError, LookupError):
    """A Jinja engine is not installed here; the message names what to install."""

    def __init__(self, message: str, *, engine: str) -> None:
        super().__init__(message)
        self.engine = engine


class InputLimitError(TemplatekitError, ValueError):
    """An input exceeds a limit: a file too large, JSON or a template nested too deeply."""


class ConfigError(TemplatekitError, ValueError):
    """``[tool.templatekit]`` of the pyproject.toml at ``path`` is malformed."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class UnsafeJinjaError(TemplatekitError, RuntimeError):
    """The installed jinja2 has known sandbox escapes; templatekit refuses to render with it."""


class RenderBudgetExceeded(BaseException):
    """A render ran out of its time or memory budget (:class:`templatekit.environment.RenderBudget`).

    A ``BaseException``, like ``KeyboardInterrupt``: it must cross the ``except Exception``
    with which probes and verification treat a template's own errors as outcomes, and abort
    whatever was driving the render.  ``kind`` is ``"time"`` (``limit`` in milliseconds) or
    ``"memory"`` (``limit`` in MB); ``scope`` is ``"render"`` or the command whose shared
    deadline ran out.
    """

    def __init__(self, kind: str, limit: int, scope: str = "render") -> None:
        if scope != "render":
            message = f"rendering exceeds the {scope} budget of {limit / 1000:g} s"
        else:
            message = f"rendering exceeds {limit} ms" if kind == "time" else f"rendering exceeds {limit} MB"
        super().__init__(message)
        self.kind = kind
        self.limit = limit
        self.scope = scope

    def __reduce__(self) -> tuple:  # crosses process boundaries (verify --jobs) with its facts
        return type(self), (self.kind, self.limit, self.scope), self.__dict__
