"""The Hugging Face Hub edge: fetch files through ``huggingface_hub``, translate its failures.

Only this module imports ``huggingface_hub``, and only when a Hub repo id is used. Everything
goes through the library's own functions (``snapshot_download``, ``hf_hub_download``), so
``--revision``, tokens (argument, ``HF_TOKEN``, stored login), the cache, ``HF_HUB_OFFLINE``
and ``HF_ENDPOINT`` behave exactly as in transformers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import GatedRepoError, OfflineError, SourceNotFoundError

__all__ = ["snapshot", "download"]


def snapshot(
    repo_id: str, patterns: Sequence[str], *, revision: str | None = None, token: str | None = None
) -> tuple[Path, str]:
    """The cached snapshot folder holding the files of ``repo_id`` that match ``patterns``, and its commit.

    Online, the revision is resolved to a commit and the matching files are downloaded (or
    reused from the cache); offline or unreachable, the cached snapshot of that revision is used.
    """
    from huggingface_hub import snapshot_download

    revision, token = revision or None, token or None
    with _translated_errors(repo_id, revision=revision, token=token):
        folder = snapshot_download(
            repo_id, revision=revision, token=token, allow_patterns=list(patterns), tqdm_class=_silent_progress_bar()
        )
    return Path(folder), Path(folder).name


def download(repo_id: str, filename: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """The local (cached) path of ``filename`` in ``repo_id`` at ``revision``."""
    from huggingface_hub import hf_hub_download

    revision, token = revision or None, token or None
    with _translated_errors(repo_id, revision=revision, token=token, filename=filename):
        return Path(hf_hub_download(repo_id, filename, revision=revision, token=token))


@contextmanager
def _translated_errors(
    repo_id: str, *, revision: str | None, token: str | None, filename: str | None = None
) -> Iterator[None]:
    """Turn ``huggingface_hub`` failures into templatekit's one-line errors (and mute its log)."""
    from huggingface_hub import constants, errors

    endpoint = constants.ENDPOINT
    at_revision = f" at revision {revision!r}" if revision else ""
    with _quiet_hub_logger():
        try:
            yield
        except errors.GatedRepoError:
            raise GatedRepoError(_gated_message(repo_id, endpoint, token), source=repo_id) from None
        except errors.RepositoryNotFoundError:
            raise SourceNotFoundError(
                f"repo {repo_id} not found on {endpoint} (nor is it a local path); if it is private, "
                "pass --token or set HF_TOKEN",
                source=repo_id,
                revision=revision,
            ) from None
        except errors.RevisionNotFoundError:
            raise SourceNotFoundError(
                f"revision {revision!r} not found in repo {repo_id} on {endpoint}", source=repo_id, revision=revision
            ) from None
        except errors.LocalEntryNotFoundError as error:
            raise OfflineError(_offline_message(repo_id, at_revision, filename, error), source=repo_id) from None
        except errors.EntryNotFoundError:
            raise SourceNotFoundError(
                f"repo {repo_id}{at_revision} has no file {filename}",
                source=repo_id,
                revision=revision,
                filename=filename,
            ) from None
        except errors.OfflineModeIsEnabled as error:
            raise OfflineError(_offline_message(repo_id, at_revision, filename, error), source=repo_id) from None
        except errors.HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if status in (401, 403):
                raise GatedRepoError(
                    f"access to {repo_id} on {endpoint} was refused ({status}): the token is invalid or lacks "
                    "permission; check --token / HF_TOKEN / `hf auth login`",
                    source=repo_id,
                ) from None
            raise OfflineError(
                f"the Hub at {endpoint} failed for {repo_id} ({status or 'no status'}): {_first_line(error)}",
                source=repo_id,
            ) from None


def _gated_message(repo_id: str, endpoint: str, token: str | None) -> str:
    from huggingface_hub import get_token

    page = f"{endpoint}/{repo_id}"
    if token or get_token():
        return (
            f"{repo_id} is a gated repo and your token has no access to it: request access at {page} "
            "with the account that owns the token, then retry"
        )
    return (
        f"{repo_id} is a gated repo: request access at {page}, then pass --token, set HF_TOKEN or run `hf auth login`"
    )


def _offline_message(repo_id: str, at_revision: str, filename: str | None, error: BaseException) -> str:
    from huggingface_hub import constants

    what = f"{filename} of {repo_id}{at_revision}" if filename else f"{repo_id}{at_revision}"
    if constants.HF_HUB_OFFLINE:
        return (
            f"{what} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and offline mode is on "
            "(HF_HUB_OFFLINE=1): fetch it once online"
        )
    cause = error.__cause__ or error.__context__
    reason = f" ({type(cause).__name__})" if cause is not None else ""
    return (
        f"cannot reach {constants.ENDPOINT}{reason} and {what} is not in the Hugging Face cache "
        f"({constants.HF_HUB_CACHE})"
    )


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


@contextmanager
def _quiet_hub_logger() -> Iterator[None]:
    """Silence ``huggingface_hub``'s warnings (we report outcomes ourselves) unless HF_HUB_VERBOSITY is set."""
    if os.environ.get("HF_HUB_VERBOSITY"):
        yield
        return
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _silent_progress_bar() -> type:
    """A ``huggingface_hub`` progress bar class that never draws (template files are tiny)."""
    from huggingface_hub.utils import tqdm

    class SilentProgressBar(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentProgressBar
