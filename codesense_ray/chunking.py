"""Split a source file into chunks along its syntax, each under the embedding model's token bound.

`chunk_file` parses the file with tree-sitter, finds its definitions (functions, classes, methods,
Terraform blocks, Dockerfile stages, Markdown sections, YAML top-level keys, ...) and makes each one a
chunk. A definition too large for the bound is split at its children's boundaries (a class into its
methods, a function into runs of statements), recursively, and as a last resort into line windows.
Code between definitions (imports, constants, comments) is packed into chunks of its own; consecutive
chunks smaller than `min_tokens` are merged while the result stays within the bound. Nothing is dropped:
every non-blank line of the file lies in exactly one chunk.

Files in a language without a grammar here, and files whose parse fails, are split as text: at the
boundaries `langchain-text-splitters` uses for that language where it knows one (``\\nclass ``,
``\\ndef ``, blank lines, ...), else at blank lines, and always at whole lines.

Pure logic: no Ray, no I/O.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple

from codesense_ray.index.schema import Chunk, Definition

log = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]

_APPROX_TOKEN = re.compile(r"\w+|[^\w\s]")


def approx_token_count(text: str) -> int:
    """Cheap stand-in for a tokenizer: words and punctuation marks (subword tokenizers give more)."""
    return len(_APPROX_TOKEN.findall(text))


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------


def chunk_file(
    text: str,
    path: str,
    language: str,
    *,
    max_tokens: int,
    min_tokens: int = 48,
    count_tokens: TokenCounter | None = None,
) -> list[Chunk]:
    """Chunks of `text` (the file at `path`), sorted, non-overlapping, covering every non-blank line.

    Newlines: the caller normalises ``\\r\\n`` and ``\\r`` to ``\\n`` first (as `files.read_text` does).
    The file's lines are ``text.split("\\n")`` and each chunk's `text` is exactly
    ``"\\n".join(lines[start_line - 1:end_line])``; a stray ``\\r`` simply stays part of its line.
    Blank lines at the edges of a chunk are left out.

    Token bound: ``count_tokens(chunk.embed_text) <= max_tokens`` for every chunk (the header is shortened
    or dropped to make room), except a chunk of one line that alone exceeds the bound, which is returned
    with ``oversized=True``. Planning uses per-line counts (each line is counted once, so the cost stays
    linear in the file size); each finished chunk is then counted once with `count_tokens` and split
    further if the real count is over. `count_tokens` defaults to `approx_token_count`, for which the
    per-line sum is exact and the final check is skipped.

    Never raises on bad input: unparsable, binary-looking or unknown-language text is chunked as text.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    if not text or text.isspace():
        return []
    lines = text.split("\n")
    budget = _Budget(lines, path, count_tokens or approx_token_count, max_tokens, exact=count_tokens is None)
    plan: _Plan | None = None
    if language in _SPECS:
        try:
            plan = _SyntaxPlanner(lines, text, language, budget, min_tokens).plan()
        except Exception:  # noqa: BLE001 - any grammar or tree surprise falls back to text chunking
            log.debug("tree-sitter chunking failed for %s; chunking as text", path, exc_info=True)
    if plan is None:
        try:
            plan = _TextPlanner(lines, language, budget, min_tokens).plan()
        except Exception:  # noqa: BLE001 - last resort: token-bounded line windows
            log.debug("text chunking failed for %s; using line windows", path, exc_info=True)
            plan = _Plan(budget.windows(0, len(lines) - 1, None), [], "text")
    return _build_chunks(plan, lines, path, language, budget)


def extract_definitions(text: str, language: str) -> list[Definition]:
    """Every definition tree-sitter finds in `text` (nested ones included), sorted by start line.

    Empty for languages without a grammar here or when parsing fails. Lines are 1-based and inclusive.
    """
    if language not in _SPECS or not text:
        return []
    try:
        tree = _parse(language, text)
        defs, _ = _find_definitions(tree.root_node, language, text.split("\n"))
    except Exception:  # noqa: BLE001
        log.debug("definition extraction failed", exc_info=True)
        return []
    return [d.public() for d in defs]


# ---------------------------------------------------------------------------------------------------
# Token accounting
# ---------------------------------------------------------------------------------------------------


class _Budget:
    """Token costs of line spans, from per-line counts computed once.

    The estimate of a span is ``overhead + sum(line counts) + newline cost per line break`` (plus the
    header and its line break), where `overhead` is what the counter charges for empty text (special
    tokens such as ``[CLS]``/``[SEP]``) and the newline cost is measured once. For word-level and WordPiece
    counters the estimate is exact; for others it can be off by a little, which the final per-chunk check
    in `_build_chunks` catches.
    """

    def __init__(self, lines: list[str], path: str, count: TokenCounter, max_tokens: int, *, exact: bool) -> None:
        self.path = path
        self.count = count
        self.max_tokens = max_tokens
        self.exact = exact
        self.overhead = max(0, int(count("")))
        self.newline = max(0, int(count("x\nx")) - 2 * int(count("x")) + self.overhead)
        cache: dict[str, int] = {}
        prefix = [0]
        total = 0
        for line in lines:
            cost = cache.get(line)
            if cost is None:
                cost = 0 if not line else max(0, int(count(line)) - self.overhead)
                cache[line] = cost
            total += cost + self.newline
            prefix.append(total)
        self._prefix = prefix
        self._header_costs: dict[str, int] = {}
        self._headers: dict[int, str] = {}

    def size(self, lo: int, hi: int) -> int:
        """Estimated tokens of lines lo..hi (0-based, inclusive) without overhead or header."""
        return self._prefix[hi + 1] - self._prefix[lo] - self.newline

    def header_cost(self, header: str) -> int:
        if not header:
            return 0
        cost = self._header_costs.get(header)
        if cost is None:
            cost = max(0, int(self.count(header)) - self.overhead) + self.newline
            self._header_costs[header] = cost
        return cost

    def total(self, lo: int, hi: int, header: str) -> int:
        return self.overhead + self.size(lo, hi) + self.header_cost(header)

    def fits(self, lo: int, hi: int, header: str) -> bool:
        return self.total(lo, hi, header) <= self.max_tokens

    def header(self, anchor: _Def | None) -> str:
        """The full header of a chunk named by `anchor` (planning assumes it; building may shorten it)."""
        key = id(anchor)
        header = self._headers.get(key)
        if header is None:
            header = self._headers[key] = _header_options(self.path, anchor)[0]
        return header

    def windows(self, lo: int, hi: int, anchor: _Def | None) -> list[_Piece]:
        """Greedy runs of whole lines under the bound; a line over the bound on its own is its own run."""
        header = self.header(anchor)
        pieces = []
        start = lo
        while start <= hi:
            end = start
            while end < hi and self.fits(start, end + 1, header):
                end += 1
            pieces.append(_Piece(start, end, anchor, whole=False, anchor_size=0, size=self.size(start, end)))
            start = end + 1
        return pieces


# ---------------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Def:
    """A definition found in the tree; rows are 0-based and inclusive."""

    name: str
    qualified: str
    kind: str
    lo: int
    hi: int
    signature: str
    parent: _Def | None = None

    def public(self) -> Definition:
        return Definition(self.name, self.qualified, self.kind, self.lo + 1, self.hi + 1)


@dataclass(frozen=True)
class _LanguageSpec:
    """What counts as a definition in one grammar.

    `defs` maps a node type to its kind; `wrappers` are node types that wrap exactly one definition
    (decorators, `export`, `template<...>`) and so belong to its range; `separator` joins qualified names.
    """

    defs: dict[str, str]
    wrappers: frozenset[str] = frozenset()
    separator: str = "."


_C_LIKE_TYPES = {"struct_specifier": "struct", "union_specifier": "struct", "enum_specifier": "enum"}
_JS_DEFS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "method_definition": "method",
    "variable_declarator": "function",  # only when its value is a function or a class
    "field_definition": "method",  # only when its value is a function
}
_TS_DEFS = {
    **_JS_DEFS,
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "enum_declaration": "enum",
    "type_alias_declaration": "type",
    "internal_module": "module",
    "module": "module",
    "public_field_definition": "method",  # only when its value is a function
    "function_signature": "function",
    "abstract_method_signature": "method",
}
_JS_WRAPPERS = frozenset({"export_statement", "lexical_declaration", "variable_declaration", "ambient_declaration"})

_SPECS: dict[str, _LanguageSpec] = {
    "python": _LanguageSpec(
        {"function_definition": "function", "class_definition": "class"}, frozenset({"decorated_definition"})
    ),
    "javascript": _LanguageSpec(_JS_DEFS, _JS_WRAPPERS),
    "typescript": _LanguageSpec(_TS_DEFS, _JS_WRAPPERS),
    "tsx": _LanguageSpec(_TS_DEFS, _JS_WRAPPERS),
    "go": _LanguageSpec(
        {"function_declaration": "function", "method_declaration": "method", "type_spec": "type"},
        frozenset({"type_declaration"}),
    ),
    "java": _LanguageSpec(
        {
            "class_declaration": "class",
            "record_declaration": "class",
            "interface_declaration": "interface",
            "annotation_type_declaration": "interface",
            "enum_declaration": "enum",
            "method_declaration": "method",
            "constructor_declaration": "method",
        }
    ),
    "rust": _LanguageSpec(
        {
            "function_item": "function",
            "function_signature_item": "function",
            "struct_item": "struct",
            "union_item": "struct",
            "enum_item": "enum",
            "trait_item": "interface",
            "impl_item": "impl",
            "mod_item": "module",
            "macro_definition": "function",
        }
    ),
    "c": _LanguageSpec({"function_definition": "function", **_C_LIKE_TYPES}, frozenset({"type_definition"})),
    "cpp": _LanguageSpec(
        {
            "function_definition": "function",
            "class_specifier": "class",
            "namespace_definition": "module",
            **_C_LIKE_TYPES,
        },
        frozenset({"type_definition", "template_declaration"}),
    ),
    "csharp": _LanguageSpec(
        {
            "namespace_declaration": "module",
            "file_scoped_namespace_declaration": "module",
            "class_declaration": "class",
            "record_declaration": "class",
            "record_struct_declaration": "struct",
            "struct_declaration": "struct",
            "interface_declaration": "interface",
            "enum_declaration": "enum",
            "method_declaration": "method",
            "constructor_declaration": "method",
            "local_function_statement": "function",
        }
    ),
    "ruby": _LanguageSpec({"class": "class", "module": "module", "method": "method", "singleton_method": "method"}),
    "php": _LanguageSpec(
        {
            "namespace_definition": "module",
            "class_declaration": "class",
            "interface_declaration": "interface",
            "trait_declaration": "class",
            "enum_declaration": "enum",
            "function_definition": "function",
            "method_declaration": "method",
        }
    ),
    "kotlin": _LanguageSpec(
        {
            "class_declaration": "class",
            "object_declaration": "class",
            "companion_object": "class",
            "function_declaration": "function",
        }
    ),
    "bash": _LanguageSpec({"function_definition": "function"}),
    # The last four find their definitions by position, not by node type (see `_find_definitions`).
    "yaml": _LanguageSpec({}),
    "hcl": _LanguageSpec({}),
    "dockerfile": _LanguageSpec({}),
    "markdown": _LanguageSpec({"section": "section"}, separator=" > "),
}

_CLASS_LIKE = frozenset({"class", "interface", "struct", "enum", "impl"})
_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function", "class", "class_expression"}
)
_C_NAME_NODES = frozenset(
    {"identifier", "field_identifier", "qualified_identifier", "destructor_name", "operator_name", "type_identifier"}
)
_TEMPLATE_ARGS = re.compile(r"<[^<>]*>")
_SIGNATURE_CHARS = 120
# Tree nodes `_SyntaxPlanner._children` may look at while searching one span for a place to cut; past it the
# span is cut into line windows instead (only pathological inputs, such as a few enormous lines, get there).
_DESCENT_WORK = 50_000

# Parsers are cached per thread (a tree-sitter parser is not safe to share); compiled queries are immutable.
_thread_state = threading.local()
_queries: dict[str, Any] = {}


def _parse(language: str, text: str) -> Any:
    parsers: dict[str, Any] = _thread_state.__dict__.setdefault("parsers", {})
    parser = parsers.get(language)
    if parser is None:
        from tree_sitter_language_pack import get_parser

        parser = parsers[language] = get_parser(language)
    # surrogatepass: text decoded with surrogateescape must not crash; tree-sitter tolerates bad UTF-8.
    return parser.parse(text.encode("utf-8", "surrogatepass"))


def _definition_nodes(root: Any, language: str) -> list[Any]:
    """Nodes of the spec's definition types, found by one tree-sitter query (runs in C, not a Python walk)."""
    from tree_sitter import Query, QueryCursor

    query = _queries.get(language)
    if query is None:
        from tree_sitter_language_pack import get_language

        lang = get_language(language)
        types = [t for t in _SPECS[language].defs if lang.id_for_node_kind(t, True)]  # absent in older grammars
        query = _queries[language] = Query(lang, "[" + " ".join(f"({t})" for t in types) + "] @def")
    captures = QueryCursor(query).captures(root)
    return sorted(captures.get("def", []), key=lambda n: (n.start_byte, -n.end_byte))


def _rows(node: Any) -> tuple[int, int]:
    """First and last row a node has text on (a node ending at column 0 ends on the row before)."""
    lo = node.start_point.row
    end = node.end_point
    hi = end.row - 1 if end.column == 0 and end.row > lo else end.row
    return lo, hi


def _extent(node: Any) -> tuple[int, int]:
    """Size of a node for picking the one to open: rows first, then bytes."""
    return node.end_point.row - node.start_point.row, node.end_byte - node.start_byte


def _text(node: Any | None) -> str:
    if node is None:
        return ""
    return node.text.decode("utf-8", "replace")


def _find_definitions(root: Any, language: str, lines: list[str]) -> tuple[list[_Def], dict[int, _Def]]:
    """Definitions with qualified names and parents, sorted by start (outermost first), and a map from
    the id of the node each one occupies (its wrapper, e.g. decorators or `export`, included) to it."""
    spec = _SPECS[language]
    if language == "yaml":
        found = _yaml_definitions(root)
    elif language == "hcl":
        found = _hcl_definitions(root)
    elif language == "dockerfile":
        found = _dockerfile_stages(root, lines)
    else:
        found = []
        for node in _definition_nodes(root, language):
            described = _describe(node, language, spec)
            if described is not None:
                outer = _outer(node, spec.wrappers)
                found.append(_Found(outer, node, *described, *_rows(outer)))
    found.sort(key=lambda f: (f.outer.start_byte, -f.outer.end_byte))
    defs: list[_Def] = []
    ids: dict[int, _Def] = {}
    open_defs: list[tuple[int, _Def]] = []  # (end byte, definition) of the definitions enclosing this one
    for f in found:
        while open_defs and open_defs[-1][0] <= f.outer.start_byte:
            open_defs.pop()
        parent = open_defs[-1][1] if open_defs and open_defs[-1][0] >= f.outer.end_byte else None
        kind = "method" if f.kind == "function" and parent is not None and parent.kind in _CLASS_LIKE else f.kind
        qualified = f"{f.prefix}{spec.separator}{f.name}" if f.prefix else f.name
        if parent is not None:
            qualified = f"{parent.qualified}{spec.separator}{qualified}"
        lo, hi = f.lo, f.hi
        while hi > lo and not lines[hi].strip():  # Markdown sections and YAML pairs end after blank lines
            hi -= 1
        sig_row = f.node.start_point.row
        signature = lines[sig_row].strip() if sig_row < len(lines) else f.name
        d = _Def(f.name, qualified, kind, lo, hi, _trim_signature(signature) or f"{kind} {f.name}", parent)
        defs.append(d)
        ids[f.outer.id] = d
        open_defs.append((f.outer.end_byte, d))
    defs.sort(key=lambda d: (d.lo, -d.hi))
    return defs, ids


class _Found(NamedTuple):
    outer: Any  # the node the definition occupies (wrappers included)
    node: Any  # the definition node itself (its first line is the signature)
    name: str
    kind: str
    prefix: str  # qualifier inside the name itself: the receiver of a Go method, `Foo` of C++ `Foo::bar`
    lo: int
    hi: int


def _trim_signature(line: str) -> str:
    line = line.rstrip("{:( \t").rstrip()
    return line if len(line) <= _SIGNATURE_CHARS else line[: _SIGNATURE_CHARS - 1] + "…"


def _outer(node: Any, wrappers: frozenset[str]) -> Any:
    """The node whose range a definition occupies: climbs wrappers that hold only this definition."""
    while True:
        parent = node.parent
        if parent is None or parent.type not in wrappers:
            return node
        if sum(1 for c in parent.named_children if c.type == node.type) != 1:
            return node
        node = parent


def _describe(node: Any, language: str, spec: _LanguageSpec) -> tuple[str, str, str] | None:
    """(name, kind, qualifier prefix) of a definition node, or None when the node is not a definition."""
    kind = spec.defs[node.type]
    t = node.type
    prefix = ""
    if language in ("c", "cpp"):
        if t == "function_definition":
            name = _c_declarator_name(node)
        elif t == "namespace_definition":
            name = _text(node.child_by_field_name("name")) or "(anonymous)"
        else:  # struct/class/union/enum: only with a body, else it is a use, not a definition
            if node.child_by_field_name("body") is None:
                return None
            name = _text(node.child_by_field_name("name"))
            if not name and node.parent is not None and node.parent.type == "type_definition":
                name = _text(node.parent.child_by_field_name("declarator"))
        name = _without_template_args(name).replace("::", ".")  # Matrix<T>::at → Matrix.at
        if "." in name:
            prefix, name = name.rsplit(".", 1)
            kind = "method" if kind == "function" else kind
    elif language == "kotlin":
        name = next((_text(c) for c in node.named_children if c.type in ("type_identifier", "simple_identifier")), "")
        if t == "companion_object":
            name = name or "Companion"
        elif t == "class_declaration":
            keywords = {c.type for c in node.children if not c.is_named}
            if "interface" in keywords:
                kind = "interface"
            elif any("enum" in _text(m).split() for m in node.named_children if m.type == "modifiers"):
                kind = "enum"
    elif language in ("javascript", "typescript", "tsx") and t in (
        "variable_declarator",
        "field_definition",
        "public_field_definition",
    ):
        value = node.child_by_field_name("value")
        if value is None or value.type not in _FUNCTION_VALUES:
            return None
        name = _text(node.child_by_field_name("name") or node.child_by_field_name("property"))
        if value.type in ("class", "class_expression"):
            kind = "class"
    elif language == "go" and t == "method_declaration":
        name = _text(node.child_by_field_name("name"))
        prefix = _go_receiver(node)
    elif language == "go" and t == "type_spec":
        name = _text(node.child_by_field_name("name"))
        body = node.child_by_field_name("type")
        kind = {"struct_type": "struct", "interface_type": "interface"}.get(body.type if body else "", "type")
    elif language == "rust" and t == "impl_item":
        name = _strip_generics(_text(node.child_by_field_name("type")))
    elif language == "ruby" and t in ("class", "module"):
        name = _text(node.child_by_field_name("name")).replace("::", ".")
        if "." in name:
            prefix, name = name.rsplit(".", 1)
    elif language == "markdown":
        name = _heading_text(node)
        if not name:
            return None
    else:
        name = _text(node.child_by_field_name("name"))
    if not name:
        return None
    return name, kind, prefix


def _c_declarator_name(node: Any) -> str:
    declarator = node.child_by_field_name("declarator")
    for _ in range(32):
        if declarator is None:
            return ""
        if declarator.type in _C_NAME_NODES:
            return _text(declarator)
        nxt = declarator.child_by_field_name("declarator")
        if nxt is None:
            nxt = next((c for c in declarator.named_children if c.type != "parameter_list"), None)
        declarator = nxt
    return ""


def _go_receiver(node: Any) -> str:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return ""
    stack = [receiver]
    while stack:
        current = stack.pop()
        if current.type == "type_identifier":
            return _text(current)
        stack.extend(reversed(current.named_children))
    return ""


def _without_template_args(name: str) -> str:
    previous = None
    while previous != name:  # innermost first: A<B<C>> → A<B> → A
        previous, name = name, _TEMPLATE_ARGS.sub("", name)
    return name


def _strip_generics(name: str) -> str:
    return name.split("<", 1)[0].strip()


def _heading_text(section: Any) -> str:
    for child in section.named_children:
        if child.type == "atx_heading":
            inline = next((c for c in child.named_children if c.type == "inline"), None)
            return _text(inline).strip() if inline is not None else _text(child).strip("# \n")
        if child.type == "setext_heading":
            return _text(child).split("\n", 1)[0].strip()
    return ""


def _yaml_definitions(root: Any) -> list[_Found]:
    """Top-level keys of every document's top-level block mapping."""
    found: list[_Found] = []
    for document in (c for c in root.named_children if c.type == "document"):
        node = document
        for _ in range(4):  # document → block_node → block_mapping
            nxt = next((c for c in node.named_children if c.type in ("block_node", "block_mapping")), None)
            if nxt is None:
                break
            node = nxt
        if node.type != "block_mapping":
            continue
        for pair in node.named_children:
            if pair.type != "block_mapping_pair":
                continue
            name = _text(pair.child_by_field_name("key")).strip()
            if name:
                lo, hi = _rows(pair)
                found.append(_Found(pair, pair, name, "section", "", lo, hi))
    return found


_HCL_KINDS = {"resource": "resource", "data": "resource", "module": "module"}
_HCL_PREFIX = {"data": "data", "module": "module", "variable": "var", "output": "output", "provider": "provider"}


def _hcl_definitions(root: Any) -> list[_Found]:
    """Top-level blocks, named the way Terraform references them (`aws_iam_role.processor`, `var.region`)."""
    found: list[_Found] = []
    bodies = [c for c in root.named_children if c.type == "body"]
    for block in (b for body in bodies for b in body.named_children if b.type == "block"):
        labels = []
        block_type = ""
        for child in block.named_children:
            if child.type == "identifier" and not block_type:
                block_type = _text(child)
            elif child.type in ("string_lit", "identifier"):
                labels.append(_text(child).strip('"'))
            elif child.type == "block_start":
                break
        if not block_type:
            continue
        parts = [p for p in (_HCL_PREFIX.get(block_type, ""), *labels) if p] if labels else [block_type]
        lo, hi = _rows(block)
        found.append(_Found(block, block, parts[-1], _HCL_KINDS.get(block_type, "block"), ".".join(parts[:-1]), lo, hi))
    return found


def _dockerfile_stages(root: Any, lines: list[str]) -> list[_Found]:
    """Build stages: each `FROM` up to the line before the next `FROM` (blank lines at the end left out)."""
    froms = [c for c in root.named_children if c.type == "from_instruction"]
    found: list[_Found] = []
    last_row = len(lines) - 1
    for i, node in enumerate(froms):
        lo = node.start_point.row
        hi = froms[i + 1].start_point.row - 1 if i + 1 < len(froms) else last_row
        while hi > lo and not lines[hi].strip():
            hi -= 1
        alias = next((c for c in node.named_children if c.type == "image_alias"), None)
        image = next((c for c in node.named_children if c.type == "image_spec"), None)
        name = _text(alias) or _text(image) or f"stage{i}"
        found.append(_Found(node, node, name, "stage", "", lo, hi))
    return found


# ---------------------------------------------------------------------------------------------------
# Planning: line spans → pieces
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Piece:
    """A run of lines (0-based, inclusive) headed for one chunk.

    `anchor` names the chunk (symbol, kind, header); `whole` says the piece holds a complete definition
    rather than a fragment of one or code between definitions.
    """

    lo: int
    hi: int
    anchor: _Def | None
    whole: bool
    anchor_size: int
    size: int
    cuts: tuple[int, ...] = ()  # rows inside the piece where the pieces merged into it began


@dataclass
class _Plan:
    pieces: list[_Piece]
    defs: list[_Def]
    default_kind: str  # kind of chunks no definition names: "code" between definitions, "text" in fallback


@dataclass
class _Span:
    lo: int
    hi: int
    nodes: list[Any]
    defn: _Def | None
    owner: _Def | None


@dataclass
class _Group:
    lo: int
    hi: int
    nodes: list[Any] = field(default_factory=list)
    defn: _Def | None = None
    trivia: bool = True


def _is_trivia(node: Any) -> bool:
    t = node.type
    return "comment" in t or t in ("attribute_item", "decorator", "annotation")


class _SyntaxPlanner:
    """Turns a tree-sitter tree into pieces: definitions whole when they fit, else split at children."""

    def __init__(self, lines: list[str], text: str, language: str, budget: _Budget, min_tokens: int) -> None:
        self.lines = lines
        self.text = text
        self.language = language
        self.budget = budget
        self.min_tokens = min_tokens

    def plan(self) -> _Plan | None:
        tree = _parse(self.language, self.text)
        root = tree.root_node
        last = len(self.lines) - 1
        if _mostly_errors(root, last + 1):
            return None
        self.defs, self.def_ids = _find_definitions(root, self.language, self.lines)
        self.def_starts = [d.lo for d in self.defs]
        pieces: list[_Piece] = []
        stack = [_Span(0, last, [root], None, None)]
        while stack:
            span = stack.pop()
            anchor = span.defn or span.owner
            header = self.budget.header(anchor)
            keep_whole = span.defn is not None or not self._contains_definition(span)
            if keep_whole and self.budget.fits(span.lo, span.hi, header):
                size = self.budget.size(span.lo, span.hi)
                whole = span.defn is not None
                pieces.append(_Piece(span.lo, span.hi, anchor, whole, size if whole else 0, size))
                continue
            children = self._children(span)
            if children is None:
                pieces.extend(self.budget.windows(span.lo, span.hi, anchor))
            else:
                stack.extend(reversed(children))
        default_kind = "text" if self.language == "markdown" else "code"
        return _Plan(_merge(pieces, self.budget, self.min_tokens), self.defs, default_kind)

    def _contains_definition(self, span: _Span) -> bool:
        i = bisect.bisect_left(self.def_starts, span.lo)
        while i < len(self.defs) and self.defs[i].lo <= span.hi:
            d = self.defs[i]
            if d is not span.defn and d.hi <= span.hi:
                return True
            i += 1
        return False

    def _children(self, span: _Span) -> list[_Span] | None:
        """Sub-spans partitioning `span` at child-node boundaries; None when there is nothing to split at."""
        if span.lo >= span.hi:
            return None  # one line: nothing to cut between (minified code stops here, not deep in its tree)
        owner = span.defn or span.owner
        nodes = span.nodes
        work = 0
        while work < _DESCENT_WORK:  # each round descends one tree level; very wide single-group levels give up
            if len(nodes) > 1:
                groups = self._group(nodes, span)
                if len(groups) > 1:
                    break
                big = max(range(len(nodes)), key=lambda i: _extent(nodes[i]))
                kids = [c for c in nodes[big].children if c.end_byte > c.start_byte]
                if not kids:
                    return None
                # Siblings on one row can never be cut apart from what shares their row, so only the ones
                # spanning rows still shape the groups (this keeps wide, minified lines linear).
                before = [n for n in nodes[:big] if n.start_point.row != n.end_point.row]
                after = [n for n in nodes[big + 1 :] if n.start_point.row != n.end_point.row]
                units = before + kids + after
            else:
                units = [c for c in nodes[0].children if c.end_byte > c.start_byte]
                if not units:
                    return None
            work += len(units)
            groups = self._group(units, span)
            if len(groups) > 1:
                break
            if not groups:
                return None
            only = groups[0]
            if only.defn is not None:
                return [_Span(span.lo, span.hi, only.nodes, only.defn, owner)]
            nodes = only.nodes
        else:
            return None
        groups = _attach_leading_trivia(_absorb_extents(groups))
        groups[0].lo = span.lo
        for prev, cur in zip(groups, groups[1:]):
            cur.lo = prev.hi + 1
        groups[-1].hi = span.hi
        spans = [_Span(g.lo, g.hi, g.nodes, g.defn, owner) for g in groups]
        if span.defn is not None:
            # A definition being split: open its body (the largest part) too, so that the signature packs
            # with the first statements or members instead of ending up alone. Three levels reach the
            # statements through a wrapper: decorated_definition → function_definition → block.
            for _ in range(3):
                body = max(range(len(spans)), key=lambda i: spans[i].hi - spans[i].lo)
                if spans[body].defn is not None or len(spans[body].nodes) != 1:
                    break
                inner = self._children(spans[body])
                if inner is None or len(inner) < 2:
                    break
                spans[body : body + 1] = inner
        return spans

    def _group(self, units: list[Any], span: _Span) -> list[_Group]:
        """Units merged into groups of rows: units sharing a row can only be cut apart mid-line, so never."""
        groups: list[_Group] = []
        for node in units:
            lo, hi = _rows(node)
            lo, hi = max(lo, span.lo), min(hi, span.hi)
            if lo > hi:
                continue
            defn = self.def_ids.get(node.id)
            if defn is span.defn:
                defn = None
            if groups and lo <= groups[-1].hi:
                g = groups[-1]
                g.hi = max(g.hi, hi)
            else:
                g = _Group(lo, hi)
                groups.append(g)
            g.nodes.append(node)
            g.trivia = g.trivia and _is_trivia(node)
            if g.defn is None and defn is not None:
                g.defn = defn
        return groups


def _absorb_extents(groups: list[_Group]) -> list[_Group]:
    """A definition reaching past its node (a Dockerfile stage runs from `FROM` to the next `FROM`) takes
    in the groups up to its last row."""
    out: list[_Group] = []
    for g in groups:
        prev = out[-1] if out else None
        if prev is not None and prev.defn is not None and g.lo <= prev.defn.hi and g.defn is None:
            prev.hi = max(prev.hi, g.hi)
            prev.nodes.extend(g.nodes)
            prev.trivia = False
        else:
            out.append(g)
    return out


def _attach_leading_trivia(groups: list[_Group]) -> list[_Group]:
    """Comments and attributes directly above a definition (no blank line between) join its span."""
    out: list[_Group] = []
    for g in reversed(groups):
        if out and g.trivia and out[-1].defn is not None and out[-1].lo == g.hi + 1:
            nxt = out[-1]
            nxt.lo = g.lo
            nxt.nodes = g.nodes + nxt.nodes
        else:
            out.append(g)
    out.reverse()
    return out


def _mostly_errors(root: Any, n_lines: int) -> bool:
    """True when syntax errors span most of the file: such a tree is noise, text chunking does better."""
    if root.type == "ERROR":
        return True
    if not root.has_error:
        return False
    error_rows = 0
    for child in root.children:
        if child.type == "ERROR":
            lo, hi = _rows(child)
            error_rows += hi - lo + 1
    return error_rows * 2 > n_lines


def _merge(pieces: list[_Piece], budget: _Budget, min_tokens: int) -> list[_Piece]:
    """Packs neighbours while the result fits the bound: fragments of one split definition (or code
    between definitions) into runs, and any piece smaller than `min_tokens` into a related neighbour.

    The head of a split definition (`class Foo:` and its docstring) joins what follows it when it can; a
    fragment never joins an unrelated definition (the last lines of one function do not open the next).
    """
    out: list[_Piece] = []
    for i, piece in enumerate(pieces):
        if out:
            prev = out[-1]
            same_run = not prev.whole and not piece.whole and prev.anchor is piece.anchor
            small = (prev.size < min_tokens or piece.size < min_tokens) and _related(prev, piece)
            if small and not same_run and prev.size >= min_tokens and _opens(piece) and i + 1 < len(pieces):
                small = _combine(piece, pieces[i + 1], budget) is None  # joins the next piece instead
            if same_run or small:
                combined = _combine(prev, piece, budget)
                if combined is not None:
                    out[-1] = combined
                    continue
        out.append(piece)
    _rebalance_tails(out, budget, min_tokens)
    return out


def _combine(a: _Piece, b: _Piece, budget: _Budget) -> _Piece | None:
    """`a` and `b` as one piece named after the more substantial one, or None when that would not fit."""
    main = a if (a.whole, a.anchor_size, a.size) >= (b.whole, b.anchor_size, b.size) else b
    if not budget.fits(a.lo, b.hi, budget.header(main.anchor)):
        return None
    size = budget.size(a.lo, b.hi)
    return _Piece(a.lo, b.hi, main.anchor, a.whole or b.whole, main.anchor_size, size, (*a.cuts, b.lo, *b.cuts))


def _related(a: _Piece, b: _Piece) -> bool:
    """False when one is a fragment of a split definition and the other lies outside that definition."""
    for fragment, other in ((a, b), (b, a)):
        if not fragment.whole and fragment.anchor is not None and not _lineage(fragment.anchor, other.anchor):
            return False
    return True


def _lineage(a: _Def, b: _Def | None) -> bool:
    """True when `b` is `a`, inside `a`, or encloses `a`."""
    if b is None:
        return False
    for x, y in ((a, b), (b, a)):
        node: _Def | None = y
        while node is not None:
            if node is x:
                return True
            node = node.parent
    return False


def _rebalance_tails(pieces: list[_Piece], budget: _Budget, min_tokens: int) -> None:
    """A small last run of a split definition takes statements from the run before it, so a function
    does not end in a chunk holding only `return result`."""
    for k in range(1, len(pieces)):
        a, b = pieces[k - 1], pieces[k]
        if b.size >= min_tokens or a.whole or b.whole or a.anchor is not b.anchor or not a.cuts:
            continue
        header = budget.header(b.anchor)
        best, best_score = None, b.size
        for cut in a.cuts:
            if not budget.fits(cut, b.hi, header):
                continue
            score = min(budget.size(a.lo, cut - 1), budget.size(cut, b.hi))
            if score > best_score:
                best, best_score = cut, score
        if best is None:
            continue
        kept = tuple(c for c in a.cuts if c < best)
        pieces[k - 1] = _Piece(a.lo, best - 1, a.anchor, False, 0, budget.size(a.lo, best - 1), kept)
        moved = tuple(c for c in a.cuts if c > best)
        pieces[k] = _Piece(best, b.hi, b.anchor, False, 0, budget.size(best, b.hi), (*moved, b.lo, *b.cuts))


def _opens(piece: _Piece) -> bool:
    return not piece.whole and piece.anchor is not None and piece.lo <= piece.anchor.lo


# ---------------------------------------------------------------------------------------------------
# Text fallback
# ---------------------------------------------------------------------------------------------------

_LANGCHAIN_NAMES = {
    "python": "python",
    "javascript": "js",
    "typescript": "ts",
    "tsx": "ts",
    "go": "go",
    "java": "java",
    "kotlin": "kotlin",
    "rust": "rust",
    "c": "c",
    "cpp": "cpp",
    "csharp": "csharp",
    "ruby": "ruby",
    "php": "php",
    "markdown": "markdown",
    "scala": "scala",
    "swift": "swift",
    "lua": "lua",
    "perl": "perl",
    "haskell": "haskell",
    "elixir": "elixir",
    "r": "r",
    "proto": "proto",
    "html": "html",
    "latex": "latex",
    "rst": "rst",
    "sol": "sol",
    "powershell": "powershell",
}

LinePredicate = Callable[[list[str], int], bool]


def _blank_line_boundary(lines: list[str], row: int) -> bool:
    return not lines[row - 1].strip() and bool(lines[row].strip())


def _separator_predicates(language: str) -> list[LinePredicate]:
    """Line-start tests built from langchain's separators for `language`, best boundary first.

    Its separators are regexes over the text (``"\\nclass "``); here each becomes a test on a line, since
    chunks must be whole lines. The catch-all separators (``"\\n"``, ``" "``, ``""``) are left to the line
    windows that end the recursion.
    """
    separators: list[str] = []
    name = _LANGCHAIN_NAMES.get(language)
    if name is not None:
        try:
            from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

            separators = RecursiveCharacterTextSplitter.get_separators_for_language(Language(name))
        except Exception:  # noqa: BLE001 - an unknown or changed langchain: blank lines still work
            separators = []
    predicates: list[LinePredicate] = []
    for sep in separators:
        if sep in ("", " ", "\n"):
            continue
        if sep == "\n\n":
            continue  # added last, below
        body = sep[1:] if sep.startswith("\n") else sep
        whole_line = body.endswith("\n")
        body = body.rstrip("\n")
        if not body or "\n" in body:
            continue
        try:
            pattern = re.compile(body)
        except re.error:
            pattern = re.compile(re.escape(body))
        if whole_line:
            predicates.append(lambda lines, row, p=pattern: p.fullmatch(lines[row]) is not None)
        else:
            predicates.append(lambda lines, row, p=pattern: p.match(lines[row]) is not None)
    predicates.append(_blank_line_boundary)
    return predicates


class _TextPlanner:
    """Recursive splitting in langchain's manner, at whole lines: the best boundary kind that occurs
    in a too-large span splits it, each part is split further with the next kinds, then parts are packed."""

    def __init__(self, lines: list[str], language: str, budget: _Budget, min_tokens: int) -> None:
        self.lines = lines
        self.budget = budget
        self.min_tokens = min_tokens
        self.predicates = _separator_predicates(language)

    def plan(self) -> _Plan:
        lines = self.lines
        pieces: list[_Piece] = []
        stack = [(0, len(lines) - 1, 0)]
        while stack:
            lo, hi, k = stack.pop()
            if self.budget.fits(lo, hi, self.budget.header(None)):
                pieces.append(_Piece(lo, hi, None, False, 0, self.budget.size(lo, hi)))
                continue
            cuts: list[int] = []
            for j in range(k, len(self.predicates)):
                test = self.predicates[j]
                cuts = [row for row in range(lo + 1, hi + 1) if test(lines, row)]
                if cuts:
                    break
            if not cuts:
                pieces.extend(self.budget.windows(lo, hi, None))
                continue
            bounds = [lo, *cuts, hi + 1]
            stack.extend((a, b - 1, j + 1) for a, b in reversed(list(zip(bounds, bounds[1:]))))
        return _Plan(_merge(pieces, self.budget, self.min_tokens), [], "text")


# ---------------------------------------------------------------------------------------------------
# Pieces → chunks
# ---------------------------------------------------------------------------------------------------


def _context(anchor: _Def | None) -> list[str]:
    """Header parts after the path: enclosing definitions by kind and name, then the anchor's signature."""
    if anchor is None:
        return []
    chain = []
    parent = anchor.parent
    while parent is not None:
        chain.append(f"{parent.kind} {parent.name}")
        parent = parent.parent
    chain.reverse()
    chain.append(anchor.signature or f"{anchor.kind} {anchor.name}")
    return chain


def _header_options(path: str, anchor: _Def | None) -> list[str]:
    """Headers from most to least informative; the first that fits is used."""
    parts = _context(anchor)
    options = []
    if parts:
        options.append("# " + " · ".join([path, *parts]))
        if len(parts) > 1:
            options.append("# " + " · ".join([path, parts[-1]]))
        options.append("# " + " · ".join(parts[-1:]))
    options.append(f"# {path}")
    options.append("")
    seen: set[str] = set()
    return [o for o in options if not (o in seen or seen.add(o))]


def _build_chunks(plan: _Plan, lines: list[str], path: str, language: str, budget: _Budget) -> list[Chunk]:
    starts = [d.lo for d in plan.defs]
    chunks: list[Chunk] = []
    for piece in plan.pieces:
        lo, hi = piece.lo, piece.hi
        while lo <= hi and not lines[lo].strip():
            lo += 1
        while hi >= lo and not lines[hi].strip():
            hi -= 1
        if lo > hi:
            continue
        chunks.extend(_finish(lo, hi, piece.anchor, lines, path, language, budget, plan, starts))
    return chunks


def _finish(
    lo: int,
    hi: int,
    anchor: _Def | None,
    lines: list[str],
    path: str,
    language: str,
    budget: _Budget,
    plan: _Plan,
    starts: list[int],
) -> Iterable[Chunk]:
    """One chunk for lines lo..hi with the longest header that fits, checked with the real counter;
    halved (recursively) in the rare case the real count is over the estimate."""
    pending = [(lo, hi)]
    while pending:
        lo, hi = pending.pop()
        text = "\n".join(lines[lo : hi + 1])
        options = _header_options(path, anchor)
        chosen = None
        for header in options:
            if budget.fits(lo, hi, header) and (budget.exact or _real(budget, header, text) <= budget.max_tokens):
                chosen = header
                break
        oversized = False
        if chosen is None:
            if lo < hi:
                # Trim the halves so no chunk starts or ends on a blank line.
                mid = (lo + hi) // 2
                left_hi, right_lo = mid, mid + 1
                while left_hi > lo and not lines[left_hi].strip():
                    left_hi -= 1
                while right_lo < hi and not lines[right_lo].strip():
                    right_lo += 1
                pending.append((right_lo, hi))
                pending.append((lo, left_hi))
                continue
            chosen = options[0]
            oversized = True
        i = bisect.bisect_left(starts, lo)
        j = bisect.bisect_right(starts, hi)
        yield Chunk(
            path=path,
            start_line=lo + 1,
            end_line=hi + 1,
            language=language,
            text=text,
            header=chosen,
            symbol=anchor.qualified if anchor is not None else None,
            kind=anchor.kind if anchor is not None else plan.default_kind,
            definitions=[d.public() for d in plan.defs[i:j]],
            oversized=oversized,
        )


def _real(budget: _Budget, header: str, text: str) -> int:
    return int(budget.count(f"{header}\n{text}" if header else text))
