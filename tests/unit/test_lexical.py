"""Code-aware tokens and sparse vectors."""

from codesense_ray.lexical import (
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
