"""Domain exceptions. The CLI turns them into one-line messages and exit codes; Serve into HTTP errors."""

from __future__ import annotations


class CodesenseError(Exception):
    """Base class: a problem the user can act on, reported without a traceback."""

    exit_code = 1


class InvalidConfig(CodesenseError):
    """The configuration file is missing, malformed, or names an unknown key or a wrong type."""

    exit_code = 2


class RepositoryNotFound(CodesenseError):
    """A repository id or path that the configuration or the index does not know."""

    exit_code = 2


class IndexNotBuilt(CodesenseError):
    """Search or status was asked before any index run finished."""

    exit_code = 3

    def __init__(self, message: str = "no index yet: run `codesense index`") -> None:
        super().__init__(message)


class StorageLocked(CodesenseError):
    """Embedded Qdrant storage is held by another process (embedded mode allows exactly one)."""

    exit_code = 4


class IndexingFailed(CodesenseError):
    """An index run failed; the previous index is still serving behind the alias."""

    exit_code = 1
