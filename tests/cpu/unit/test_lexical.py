"""Code-aware tokens and sparse vectors."""

from codesense_ray.index.lexical import (
    code_tokens,
    definition_names,
    document_sparse_vector,
    path_tokens,
    query_identifiers,
    query_sparse_vector,
    split_identifier,
    token_index,
)


def test_split_identifier_handles_camel_snake_dotted_and_acronyms():
    """Identifiers split into lower-case words across camelCase, snake_case, dots and acronyms."""
    assert split_identifier("PaymentAuthorizer.verify_JWTToken") == ["payment", "authorizer", "verify", "jwt", "token"]
    assert split_identifier("HTTPServer") == ["http", "server"]
    assert split_identifier("x") == []


def test_code_tokens_keep_whole_identifiers_and_parts():
    """A code line yields whole identifiers (for exact matches) plus their parts (for word matches)."""
    toks = code_tokens("def verify_token(self, rawToken): return jwt.decode(rawToken)")
    for t in ("verify_token", "verify", "token", "rawtoken", "raw", "jwt.decode", "jwt", "decode"):
        assert t in toks
    assert "return" in toks and "the" not in code_tokens("the return")


def test_path_tokens_split_directories_and_stem():
    """Path tokens include directory names and the split file stem, not the extension."""
    toks = path_tokens("app/auth/jwt_utils.py")
    assert {"app", "auth", "jwt_utils", "jwt", "utils"} <= set(toks)
    assert "py" not in toks


def test_document_vector_is_sorted_unique_and_saturates():
    """Sparse indices are sorted and unique; repeating a term has diminishing weight (BM25 saturation)."""
    idx, val = document_sparse_vector("token " * 50, "a.py")
    assert idx == sorted(set(idx))
    one = dict(zip(*document_sparse_vector("token", "")))[token_index("token")]
    many = dict(zip(idx, val))[token_index("token")]
    assert many < 50 * one and many > one


def test_query_vector_and_empty_query():
    """Query vectors weight each distinct token; a query with no tokens gives an empty vector."""
    idx, val = query_sparse_vector("verify verify token")
    w = dict(zip(idx, val))
    assert w[token_index("verify")] > w[token_index("token")]
    assert query_sparse_vector("?? !!") == ([], [])


def test_query_identifiers_extracts_code_like_names():
    """Backticked, dotted and snake/camel names in a question become lookup keys, lower-cased."""
    names = query_identifiers("Where is `PaymentAuthorizer.authorize` called and what does verify_token do in AuthMiddleware?")
    assert "paymentauthorizer.authorize" in names and "authorize" in names
    assert "verify_token" in names and "authmiddleware" in names
    assert "where" not in names and "is" not in names


def test_definition_names_include_name_and_qualified_name():
    """The payload lookup keys hold both the short and the qualified name, de-duplicated."""
    defs = [{"name": "authorize", "qualified_name": "PaymentAuthorizer.authorize"}, {"name": "authorize", "qualified_name": "authorize"}]
    assert definition_names(defs) == ["authorize", "paymentauthorizer.authorize"]


def test_query_paths_reads_traceback_frames_innermost_first_and_mentions():
    """Traceback frames (innermost first) and plain file mentions become path lookups; URLs do not."""
    from codesense_ray.index.lexical import query_paths, traceback_functions

    q = (
        'Traceback (most recent call last):\n  File "/venv/lib/site-packages/httpx/_client.py", line 8, in get\n'
        '  File "/venv/lib/site-packages/httpx/_models.py", line 9, in raise_for_status\nValueError: x\n'
        "see app/auth/jwt.py and https://example.com/a/b.py"
    )
    assert query_paths(q)[:3] == ["/venv/lib/site-packages/httpx/_models.py", "/venv/lib/site-packages/httpx/_client.py", "app/auth/jwt.py"]
    assert "example.com/a/b.py" not in " ".join(query_paths(q))
    assert traceback_functions(q) == ["raise_for_status", "get"]


def test_path_suffixes_match_repo_relative_paths():
    """An absolute path's suffixes include the repo-relative forms the index stores."""
    from codesense_ray.index.lexical import path_suffixes

    assert path_suffixes("/usr/lib/site-packages/httpx/_client.py")[:2] == ["_client.py", "httpx/_client.py"]


def test_split_passages_keeps_everything_and_bounds_size():
    """Long queries split at paragraph/line boundaries into bounded passages, losing no text."""
    from codesense_ray.index.lexical import split_passages

    text = "intro paragraph\n\n" + "\n".join(f"  File \"x{i}.py\", line {i}" for i in range(200)) + "\n\nfinal words"
    parts = split_passages(text, max_chars=500)
    assert len(parts) > 2 and all(len(p) <= 500 for p in parts)
    assert parts[0].startswith("intro") and parts[-1].endswith("final words")
    assert split_passages("short") == ["short"]
