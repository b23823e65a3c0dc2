"""`codesense mcp`: the index as Model Context Protocol tools and resources for IDE agents.

Tools: `search_code(query, repo?, k?)`, `ask_codebase(question, repo?)`, `read_lines(repo, path, start, end)`;
resources: one `codesense://repositories/<id>` per indexed repository. Transports: stdio (an IDE starts
`codesense mcp` as a child process) or streamable HTTP (`--transport http`, bearer token = the API token named by
`serve.auth_token_env`).

`read_lines` is a file server with a strict allow-list: the file must be *indexed* for that repository (its
path is looked up in the live index, not on disk), the path relative and free of `..`, and the real path — after
symlinks — inside the repository's directory. Anything else is refused with a one-line reason.

`CodebaseTools` holds the logic and knows nothing of MCP; `build_mcp_server` adapts it to the SDK.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Sequence

from pydantic import Field

from codesense_ray.errors import CodesenseError, InvalidArgument, RepositoryNotFound  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    from codesense_ray.config import Config
    from codesense_ray.sources.repositories import RepositoryInfo

log = logging.getLogger("codesense.mcp")

MAX_READ_LINES = 500  # one read_lines call; an agent pages through longer ranges
MAX_SEARCH_K = 50
RESOURCE_PREFIX = "codesense://repositories/"




def safe_relative_path(path: str) -> str:
    """`path` normalised as a repository-relative POSIX path; absolute paths, `..`, `~`, `\\` and NUL are refused."""
    if not isinstance(path, str) or not path.strip():
        raise InvalidArgument("path: must be a non-empty path relative to the repository root")
    if "\x00" in path or "\\" in path:
        raise InvalidArgument(f"path: {path!r} contains a backslash or NUL; use '/'-separated repository paths")
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~"):
        raise InvalidArgument(f"path: {path!r} is absolute; give it relative to the repository root")
    if ".." in pure.parts:
        raise InvalidArgument(f"path: {path!r} contains '..'; only files inside the repository can be read")
    normal = pure.as_posix()
    if normal in ("", "."):
        raise InvalidArgument("path: must name a file, not the repository root")
    return normal


class CodebaseTools:
    """Search, answers and indexed-file reads over one live index. Calls are serialised (embedded Qdrant)."""

    def __init__(self, retriever, answerer, repositories: Sequence["RepositoryInfo"], max_read_lines: int = MAX_READ_LINES) -> None:
        self.retriever = retriever
        self.answerer = answerer
        self.roots = {r.id: r for r in repositories}
        self.max_read_lines = max_read_lines
        self._lock = threading.Lock()

    # --- tools ------------------------------------------------------------------------------------
    def search_code(self, query: str, repo: str | None = None, k: int | None = None) -> dict:
        if not query or not query.strip():
            raise InvalidArgument("query: empty")
        with self._lock:
            hits = self.retriever.search(query, k=k, repo_ids=[repo] if repo else [])
        # The chunk's text rides along: an agent usually needs the code itself, not only where it is.
        return {"query": query, "hits": [{k: v for k, v in h.to_dict(with_text=True).items() if k != "header"} for h in hits]}

    def ask_codebase(self, question: str, repo: str | None = None) -> dict:
        with self._lock:
            answer = self.answerer.ask(question, repo_ids=[repo] if repo else [])
        return answer.to_dict()

    def read_lines(self, repo: str, path: str, start: int, end: int) -> dict:
        from codesense_ray.sources.files import decode_source, file_hash

        rel = safe_relative_path(path)
        if start < 1 or end < start:
            raise InvalidArgument(f"start/end: need 1 <= start <= end, got start={start}, end={end}")
        if end - start + 1 > self.max_read_lines:
            raise InvalidArgument(f"start/end: at most {self.max_read_lines} lines per call, asked for {end - start + 1}")
        info = self._repository(repo)
        with self._lock:
            indexed = self._indexed_file(repo, rel)
        if indexed is None:
            raise InvalidArgument(f"path: {rel!r} is not an indexed file of repository '{repo}'")
        if info.path is None:
            raise InvalidArgument(f"repo: '{repo}' has no local directory here")
        root = info.path.resolve()
        target = (root / rel).resolve()
        if not target.is_relative_to(root):
            raise InvalidArgument(f"path: {rel!r} resolves outside repository '{repo}' (a symlink); refused")
        try:
            text = decode_source(target.read_bytes())
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidArgument(f"path: {rel!r} cannot be read now ({type(err).__name__}); re-run `codesense index`") from None
        lines = text.rstrip("\n").split("\n")
        if start > len(lines):
            raise InvalidArgument(f"start: {start} is past the end of {rel} ({len(lines)} lines)")
        end = min(end, len(lines))
        return {
            "repo": repo,
            "path": rel,
            "start_line": start,
            "end_line": end,
            "line_count": len(lines),
            "url": info.line_url(rel, start, end),
            # The file changed since it was indexed: line numbers may not match the index's links any more.
            "stale": file_hash(text) != indexed["file_hash"],
            "text": "\n".join(lines[start - 1 : end]),
        }

    # --- resources --------------------------------------------------------------------------------
    def repositories(self) -> list[dict]:
        with self._lock:
            metas = self.retriever.repositories()
        out = []
        for rid, meta in sorted(metas.items()):
            info = self.roots.get(rid)
            out.append(
                {
                    "id": rid,
                    "ref": meta.get("ref"),
                    "web_url": info.web_url if info else meta.get("web_url"),
                    "files": meta.get("files"),
                    "model": meta.get("model"),
                    "indexed_at": meta.get("indexed_at"),
                }
            )
        return out

    # --- internals --------------------------------------------------------------------------------
    def _repository(self, repo: str) -> "RepositoryInfo":
        with self._lock:
            indexed = self.retriever.repositories()
        if repo not in indexed or repo not in self.roots:
            known = sorted(set(indexed) & set(self.roots))
            raise RepositoryNotFound(f"repo: unknown repository '{repo}' (indexed: {', '.join(known) or 'none'})")
        return self.roots[repo]

    def _indexed_file(self, repo: str, path: str) -> dict | None:
        """The live index's record of `repo:path` (its content hash), or None when that file is not indexed."""
        from qdrant_client import models

        store = self.retriever.store
        flt = models.Filter(
            must=[
                models.FieldCondition(key="repo_id", match=models.MatchValue(value=repo)),
                models.FieldCondition(key="path", match=models.MatchValue(value=path)),
            ]
        )
        records, _ = store.client.scroll(store.alias, scroll_filter=flt, limit=1, with_payload=["file_hash"])
        return dict(records[0].payload) if records else None


def build_tools(cfg: "Config") -> CodebaseTools:
    """The retriever, answerer and repository roots of `cfg`, loaded in this process (one embedded-Qdrant user)."""
    from codesense_ray.sources.repositories import resolve_repositories
    from codesense_ray.app.compose import build_answerer, build_retriever

    retriever = build_retriever(cfg)
    return CodebaseTools(retriever, build_answerer(cfg, retriever), resolve_repositories(cfg))


def build_mcp_server(tools: CodebaseTools):
    """An `MCPServer` exposing `tools`: three tools and one resource per indexed repository."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.mcpserver.resources import FunctionResource

    server = MCPServer(
        name="codesense",
        instructions="Search and ask about the indexed repositories. Every link returned is verified against the index "
        "and pinned to the indexed commit; read_lines reads only indexed files.",
    )

    def call(fn, *args):
        try:
            return fn(*args)
        except CodesenseError as err:
            raise ToolError(f"{type(err).__name__}: {err}") from None

    @server.tool(description="Ranked code search (dense + lexical + symbol, fused): hits with repo, path, lines and a verified link.", structured_output=True)
    def search_code(
        query: Annotated[str, Field(min_length=1, description="free text or an identifier")],
        repo: Annotated[str | None, Field(description="only this repository id")] = None,
        k: Annotated[int | None, Field(ge=1, le=MAX_SEARCH_K, description="number of hits")] = None,
    ) -> dict[str, Any]:
        return call(tools.search_code, query, repo, k)

    @server.tool(description="Answer a question about the code, citing verified, commit-pinned links; returns the answer and its sources.", structured_output=True)
    def ask_codebase(
        question: Annotated[str, Field(min_length=1, description="the question")],
        repo: Annotated[str | None, Field(description="only this repository id")] = None,
    ) -> dict[str, Any]:
        return call(tools.ask_codebase, question, repo)

    @server.tool(description=f"Lines start..end (1-based, inclusive, at most {MAX_READ_LINES}) of an indexed file, with its link.", structured_output=True)
    def read_lines(
        repo: Annotated[str, Field(description="repository id")],
        path: Annotated[str, Field(description="file path relative to the repository root, as in search hits")],
        start: Annotated[int, Field(ge=1, description="first line, 1-based")],
        end: Annotated[int, Field(ge=1, description="last line, inclusive")],
    ) -> dict[str, Any]:
        return call(tools.read_lines, repo, path, start, end)

    for repo in tools.repositories():
        rid = repo["id"]
        server.add_resource(
            FunctionResource(
                uri=RESOURCE_PREFIX + rid,
                name=rid,
                description=f"Indexed repository {rid} at {repo['ref'] or 'HEAD'}",
                mime_type="application/json",
                fn=lambda rid=rid: json.dumps(next((r for r in tools.repositories() if r["id"] == rid), {"id": rid, "indexed": False})),
            )
        )
    return server


class BearerAuth:
    """ASGI wrapper: every HTTP request needs `Authorization: Bearer <token>`; lifespan events pass through."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            header = dict(scope.get("headers") or ()).get(b"authorization", b"")
            if not hmac.compare_digest(header, b"Bearer " + self.token):
                body = json.dumps({"error": {"type": "Unauthorized", "message": "missing or invalid bearer token"}}).encode()
                headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server, token: str | None, host: str):
    """The streamable-HTTP ASGI app at `/mcp`, behind the bearer token when one is configured."""
    app = server.streamable_http_app(streamable_http_path="/mcp", host=host)
    return BearerAuth(app, token) if token else app


def serve_http(server, host: str, port: int, token: str | None) -> None:
    import uvicorn

    uvicorn.run(http_app(server, token, host), host=host, port=port, log_level="warning")


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


def check_http_exposure(host: str, token: str | None, token_env: str | None) -> None:
    """Refuse to serve the index without a token on anything but loopback."""
    if token is None and not _is_loopback(host):
        where = f"set the env var {token_env}" if token_env else "set serve.auth_token_env and that env var"
        raise CodesenseError(f"--host {host}: the MCP HTTP server needs a bearer token off loopback; {where}")

