"""A small real Hugging Face Hub on 127.0.0.1, speaking what ``huggingface_hub``'s own client sends.

``huggingface_hub`` 2.x talks HTTP through its own client, so request mocks never see it;
this is a real ``http.server`` in a thread instead. Repos are plain Python data::

    from fakehub import FakeHub

    repos = {
        "org/model": {"revisions": {"main": {"tokenizer_config.json": b"{...}",
                                              "additional_chat_templates/rag.jinja": "..."},
                                     "v1.0": {"chat_template.jinja": "..."}}},
        "org/gated": {"revisions": {"main": {...}}, "gated": True, "granted": {"hf_good"}},
        "org/secret": {"revisions": {"main": {...}}, "private": True},
    }
    with FakeHub(repos, tokens={"hf_good", "hf_other"}) as hub:
        env = hub.environment(tmp_path)  # HF_ENDPOINT, HF_HOME, HF_HUB_DISABLE_TELEMETRY=1, ...
        subprocess.run(["templatekit", "show", "org/model"], env={**os.environ, **env})
        hub.commit("org/model", "main")  # the 40-hex commit id the hub reports for that revision
        hub.requests                      # [(method, path, token or None), ...] as received

File contents are ``bytes`` or ``str`` (UTF-8); ``files_from_folder(path)`` turns a local model
folder into such a mapping.  Each revision name is its own commit; the
commit id (a stable SHA-1 of the repo id, revision and files) is accepted as a revision too.

Access, as on the real Hub:

* ``tokens`` are the credentials the hub knows; any other ``Authorization: Bearer`` token is
  refused on every request with 401 "Invalid credentials in Authorization header".
* ``"gated": True``: metadata and file listings are public, file downloads need a token in
  the repo's ``"granted"`` set (default: every known token).  No token: 401, a token without
  the grant: 403, both with ``X-Error-Code: GatedRepo``.
* ``"private": True``: everything needs a granted token, else ``RepoNotFound`` (401/404).

Served routes (all ``huggingface_hub`` needs for ``hf_hub_download``, ``snapshot_download``,
``model_info``/``repo_info``, ``list_repo_files`` and ``list_repo_tree``):

* ``HEAD|GET /{repo}/resolve/{revision}/{path}``: the file with ``X-Repo-Commit``, ``ETag``
  (the git blob id) and ``Content-Length``;
* ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{revision}``: model info with
  ``sha`` and ``siblings``;
* ``GET /api/models/{repo}/tree/{revision}[/{path}]?recursive=``: file and folder entries;
* ``GET /api/agent-harnesses``: an empty registry (only asked for when telemetry is on).

Errors carry ``X-Error-Code`` (``RepoNotFound``, ``GatedRepo``, ``RevisionNotFound``,
``EntryNotFound``) and ``X-Error-Message`` with the real Hub's status codes.  The server
binds port 0, serves from daemon threads, and stops on ``close()``/``__exit__`` or, at the
latest, after ``lifetime`` seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeHub", "hub_environment", "files_from_folder"]

_REPO = r"(?P<repo>[\w.-]+(?:/[\w.-]+)?)"
_RESOLVE = re.compile(rf"^/{_REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")
_MODEL_API = re.compile(rf"^/api/models/{_REPO}(?:/(?P<kind>revision|tree)/(?P<revision>[^/]+)(?:/(?P<path>.+))?)?$")
_INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


class _Reply(Exception):
    """An HTTP answer decided while routing (used for errors)."""

    def __init__(self, status: int, error_code: str | None = None, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def _blob_id(content: bytes) -> str:
    """The git blob SHA-1 of ``content`` (what the Hub sends as a regular file's ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class _Repo:
    def __init__(self, repo_id: str, spec: Mapping[str, Any], known_tokens: frozenset[str]) -> None:
        self.repo_id = repo_id
        self.gated = bool(spec.get("gated", False))
        self.private = bool(spec.get("private", False))
        self.granted = frozenset(spec.get("granted", known_tokens))
        self.revisions: dict[str, dict[str, bytes]] = {
            name: {
                path: content.encode("utf-8") if isinstance(content, str) else bytes(content)
                for path, content in files.items()
            }
            for name, files in spec["revisions"].items()
        }
        self.commits = {name: self._commit_id(name, files) for name, files in self.revisions.items()}

    def _commit_id(self, revision: str, files: Mapping[str, bytes]) -> str:
        digest = hashlib.sha1(f"{self.repo_id}\0{revision}".encode())
        for path in sorted(files):
            digest.update(f"\0{path}\0{_blob_id(files[path])}".encode())
        return digest.hexdigest()

    def resolve(self, revision: str) -> tuple[str, dict[str, bytes]]:
        """(commit id, files) for a branch/tag name or a commit id."""
        for name, commit in self.commits.items():
            if revision in (name, commit):
                return commit, self.revisions[name]
        raise _Reply(404, "RevisionNotFound", f"Invalid rev id: {revision}")


class FakeHub:
    """A Hub serving ``repos`` on ``http://127.0.0.1:<free port>`` (see the module docstring)."""

    def __init__(
        self, repos: Mapping[str, Mapping[str, Any]], *, tokens: Iterable[str] = (), lifetime: float = 600.0
    ) -> None:
        self.tokens = frozenset(tokens)
        self._repos = {repo_id: _Repo(repo_id, spec, self.tokens) for repo_id, spec in repos.items()}
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fakehub", daemon=True
        )
        self._thread.start()
        self._deadline = threading.Timer(lifetime, self.close)
        self._deadline.daemon = True
        self._deadline.start()
        self._closed = False

    @property
    def endpoint(self) -> str:
        """The base URL to put in ``HF_ENDPOINT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def commit(self, repo_id: str, revision: str = "main") -> str:
        """The commit id the hub reports for ``revision`` of ``repo_id``."""
        return self._repos[repo_id].commits[revision]

    def environment(self, home: str | Path, *, offline: bool = False) -> dict[str, str]:
        """Environment variables pointing ``huggingface_hub`` at this hub (see :func:`hub_environment`)."""
        return hub_environment(self.endpoint, home, offline=offline)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._deadline.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- routing -----------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                hub._answer(self, head=True)

            def do_GET(self) -> None:  # noqa: N802
                hub._answer(self, head=False)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        return Handler

    def _answer(self, handler: BaseHTTPRequestHandler, *, head: bool) -> None:
        url = urlsplit(handler.path)
        token = _bearer_token(handler.headers.get("Authorization"))
        with self._lock:
            self.requests.append((handler.command, url.path, token))
        try:
            if token is not None and token not in self.tokens:
                raise _Reply(401, None, _INVALID_CREDENTIALS)
            status, headers, body = self._route(url.path, parse_qs(url.query), token)
        except _Reply as reply:
            status, body = reply.status, json.dumps({"error": reply.message}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": reply.message}
            if reply.error_code:
                headers["X-Error-Code"] = reply.error_code
        handler.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            handler.send_header(name, value)
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _route(self, path: str, query: dict[str, list[str]], token: str | None) -> tuple[int, dict[str, str], bytes]:
        if path == "/api/agent-harnesses":
            return _json({"harnesses": {}, "standardEnvVars": []})
        if match := _RESOLVE.match(path):
            return self._resolve(match["repo"], unquote(match["revision"]), unquote(match["path"]), token)
        if match := _MODEL_API.match(path):
            repo = self._visible_repo(match["repo"], token)
            commit, files = repo.resolve(unquote(match["revision"] or "main"))
            if match["kind"] == "tree":
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                return _json(_tree(files, unquote(match["path"] or ""), recursive=recursive))
            return _json(
                {
                    "_id": commit[:24],
                    "id": repo.repo_id,
                    "modelId": repo.repo_id,
                    "sha": commit,
                    "private": repo.private,
                    "gated": "manual" if repo.gated else False,
                    "disabled": False,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                    "siblings": [{"rfilename": name} for name in sorted(files)],
                }
            )
        raise _Reply(404, None, "Not Found")

    def _visible_repo(self, repo_id: str, token: str | None) -> _Repo:
        repo = self._repos.get(repo_id)
        if repo is None or (repo.private and token not in repo.granted):
            raise _Reply(401 if token is None else 404, "RepoNotFound", "Repository not found")
        return repo

    def _resolve(self, repo_id: str, revision: str, path: str, token: str | None) -> tuple[int, dict[str, str], bytes]:
        repo = self._visible_repo(repo_id, token)
        if repo.gated and token not in repo.granted:
            if token is None:
                raise _Reply(
                    401,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted. You must have access "
                    "to it and be authenticated to access it. Please log in.",
                )
            raise _Reply(
                403,
                "GatedRepo",
                f"Access to model {repo_id} is restricted and you are not in the "
                f"authorized list. Visit {self.endpoint}/{repo_id} to ask for access.",
            )
        commit, files = repo.resolve(revision)
        if path not in files:
            raise _Reply(404, "EntryNotFound", "Entry not found")
        content = files[path]
        return (
            200,
            {
                "Content-Type": "application/octet-stream",
                "X-Repo-Commit": commit,
                "ETag": f'"{_blob_id(content)}"',
                "Accept-Ranges": "bytes",
            },
            content,
        )


def hub_environment(endpoint: str, home: str | Path, *, offline: bool = False) -> dict[str, str]:
    """Environment for a ``huggingface_hub`` process using ``endpoint`` with its cache under ``home``.

    ``HF_ENDPOINT``, ``HF_HOME`` and ``HF_HUB_OFFLINE`` are read when ``huggingface_hub`` is
    imported, so pass these to a subprocess (or set them before the first import).
    ``HF_TOKEN`` (and the token file, kept under ``home``) start empty so that a developer's own
    login never leaks into a test: set ``HF_TOKEN`` on top to test an implicit token;
    ``HF_HUB_ETAG_TIMEOUT``/``HF_HUB_DOWNLOAD_TIMEOUT`` keep failures quick.
    """
    home = Path(home)
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_TOKEN": "",
        "HUGGING_FACE_HUB_TOKEN": "",
        "HF_OIDC_RESOURCE": "",
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_ETAG_TIMEOUT": "5",
        "HF_HUB_DOWNLOAD_TIMEOUT": "5",
    }


def files_from_folder(folder: str | Path) -> dict[str, bytes]:
    """Every file under ``folder`` as ``{"relative/posix/path": bytes}``, ready for a revision."""
    root = Path(folder)
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _json(data: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()


def _tree(files: Mapping[str, bytes], folder: str, *, recursive: bool) -> list[dict[str, Any]]:
    """The Hub's tree listing of ``folder`` (``""`` for the root): files and sub-folders."""
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        for depth in range(1, len(parts)):
            if depth > 1 and not recursive:
                break
            sub = prefix + "/".join(parts[:depth])
            entries.setdefault(
                sub, {"type": "directory", "path": sub, "size": 0, "oid": hashlib.sha1(sub.encode()).hexdigest()}
            )
        if recursive or len(parts) == 1:
            content = files[path]
            entries[path] = {"type": "file", "path": path, "size": len(content), "oid": _blob_id(content)}
    if prefix and not entries:
        raise _Reply(404, "EntryNotFound", f"{folder} does not exist on the revision")
    return sorted(entries.values(), key=lambda entry: entry["path"])
