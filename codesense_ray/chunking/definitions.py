"""What counts as a definition in each language, and finding the definitions in a tree.

`LANGUAGES` is the table: per language, the node types that are definitions (and their kind), the function
that names such a node, the wrapper node types that belong to a definition's range, and the separator of
qualified names. YAML, HCL and Dockerfile find their definitions by position instead (top-level keys,
blocks, build stages), with a finder of their own. A language is chunked by syntax exactly when it is in
this table.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from codesense_ray.chunking.grammars import node_text, nodes_of_types, parse, rows
from codesense_ray.chunking.records import Definition

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Def:
    """A definition found in the tree; rows are 0-based and inclusive."""

    name: str
    qualified: str
    kind: str
    lo: int
    hi: int
    signature: str
    parent: Def | None = None

    def public(self) -> Definition:
        return Definition(self.name, self.qualified, self.kind, self.lo + 1, self.hi + 1)


class Found(NamedTuple):
    outer: Any  # the node the definition occupies (wrappers included)
    node: Any  # the definition node itself (its first line is the signature)
    name: str
    kind: str
    prefix: str  # qualifier inside the name itself: the receiver of a Go method, `Foo` of C++ `Foo::bar`
    lo: int
    hi: int


# (node, kind from the table) → (name, kind, qualifier prefix); None or an empty name: not a definition after all.
Describer = Callable[[Any, str], "tuple[str, str, str] | None"]
# (root, the file's lines) → definitions found by position rather than by node type.
Finder = Callable[[Any, list[str]], list[Found]]


# ---------------------------------------------------------------------------------------------------
# Naming a definition node, per language
# ---------------------------------------------------------------------------------------------------

_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function", "class", "class_expression"}
)
_JS_VALUE_HOLDERS = frozenset({"variable_declarator", "field_definition", "public_field_definition"})
_C_NAME_NODES = frozenset(
    {"identifier", "field_identifier", "qualified_identifier", "destructor_name", "operator_name", "type_identifier"}
)
_TEMPLATE_ARGS = re.compile(r"<[^<>]*>")


def _by_name_field(node: Any, kind: str) -> tuple[str, str, str]:
    """The usual case: the node's `name` field."""
    return node_text(node.child_by_field_name("name")), kind, ""


def _describe_c_family(node: Any, kind: str) -> tuple[str, str, str] | None:
    """C and C++: declarator names, `(anonymous)` namespaces, typedef'd structs; `Matrix<T>::at` → `Matrix.at`."""
    t = node.type
    if t == "function_definition":
        name = _c_declarator_name(node)
    elif t == "namespace_definition":
        name = node_text(node.child_by_field_name("name")) or "(anonymous)"
    else:  # struct/class/union/enum: only with a body, else it is a use, not a definition
        if node.child_by_field_name("body") is None:
            return None
        name = node_text(node.child_by_field_name("name"))
        if not name and node.parent is not None and node.parent.type == "type_definition":
            name = node_text(node.parent.child_by_field_name("declarator"))
    name = _without_template_args(name).replace("::", ".")
    prefix = ""
    if "." in name:
        prefix, name = name.rsplit(".", 1)
        kind = "method" if kind == "function" else kind
    return name, kind, prefix


def _describe_kotlin(node: Any, kind: str) -> tuple[str, str, str]:
    """Kotlin: names are child identifiers; `class` declarations also make interfaces and enums."""
    t = node.type
    name = next((node_text(c) for c in node.named_children if c.type in ("type_identifier", "simple_identifier")), "")
    if t == "companion_object":
        name = name or "Companion"
    elif t == "class_declaration":
        keywords = {c.type for c in node.children if not c.is_named}
        if "interface" in keywords:
            kind = "interface"
        elif any("enum" in node_text(m).split() for m in node.named_children if m.type == "modifiers"):
            kind = "enum"
    return name, kind, ""


def _describe_js(node: Any, kind: str) -> tuple[str, str, str] | None:
    """JavaScript/TypeScript: a variable or field counts only when its value is a function or a class."""
    if node.type not in _JS_VALUE_HOLDERS:
        return _by_name_field(node, kind)
    value = node.child_by_field_name("value")
    if value is None or value.type not in _FUNCTION_VALUES:
        return None
    name = node_text(node.child_by_field_name("name") or node.child_by_field_name("property"))
    if value.type in ("class", "class_expression"):
        kind = "class"
    return name, kind, ""


def _describe_go(node: Any, kind: str) -> tuple[str, str, str]:
    """Go: methods are qualified by their receiver type; a type is a struct, an interface or a plain type."""
    if node.type == "method_declaration":
        return node_text(node.child_by_field_name("name")), kind, _go_receiver(node)
    if node.type == "type_spec":
        body = node.child_by_field_name("type")
        kind = {"struct_type": "struct", "interface_type": "interface"}.get(body.type if body else "", "type")
        return node_text(node.child_by_field_name("name")), kind, ""
    return _by_name_field(node, kind)


def _describe_rust(node: Any, kind: str) -> tuple[str, str, str]:
    """Rust: an `impl` block is named after its type, without generics."""
    if node.type == "impl_item":
        return _strip_generics(node_text(node.child_by_field_name("type"))), kind, ""
    return _by_name_field(node, kind)


def _describe_ruby(node: Any, kind: str) -> tuple[str, str, str]:
    """Ruby: `class A::B` is `B` qualified by `A`."""
    if node.type not in ("class", "module"):
        return _by_name_field(node, kind)
    name = node_text(node.child_by_field_name("name")).replace("::", ".")
    prefix = ""
    if "." in name:
        prefix, name = name.rsplit(".", 1)
    return name, kind, prefix


def _describe_markdown(node: Any, kind: str) -> tuple[str, str, str]:
    """Markdown: a section is named by its heading's text."""
    return _heading_text(node), kind, ""


def _c_declarator_name(node: Any) -> str:
    declarator = node.child_by_field_name("declarator")
    for _ in range(32):
        if declarator is None:
            return ""
        if declarator.type in _C_NAME_NODES:
            return node_text(declarator)
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
            return node_text(current)
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
            return node_text(inline).strip() if inline is not None else node_text(child).strip("# \n")
        if child.type == "setext_heading":
            return node_text(child).split("\n", 1)[0].strip()
    return ""


# ---------------------------------------------------------------------------------------------------
# Definitions found by position
# ---------------------------------------------------------------------------------------------------


def _yaml_definitions(root: Any, lines: list[str]) -> list[Found]:
    """Top-level keys of every document's top-level block mapping."""
    found: list[Found] = []
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
            name = node_text(pair.child_by_field_name("key")).strip()
            if name:
                lo, hi = rows(pair)
                found.append(Found(pair, pair, name, "section", "", lo, hi))
    return found


_HCL_KINDS = {"resource": "resource", "data": "resource", "module": "module"}
_HCL_PREFIX = {"data": "data", "module": "module", "variable": "var", "output": "output", "provider": "provider"}


def _hcl_definitions(root: Any, lines: list[str]) -> list[Found]:
    """Top-level blocks, named the way Terraform references them (`aws_iam_role.processor`, `var.region`)."""
    found: list[Found] = []
    bodies = [c for c in root.named_children if c.type == "body"]
    for block in (b for body in bodies for b in body.named_children if b.type == "block"):
        labels = []
        block_type = ""
        for child in block.named_children:
            if child.type == "identifier" and not block_type:
                block_type = node_text(child)
            elif child.type in ("string_lit", "identifier"):
                labels.append(node_text(child).strip('"'))
            elif child.type == "block_start":
                break
        if not block_type:
            continue
        parts = [p for p in (_HCL_PREFIX.get(block_type, ""), *labels) if p] if labels else [block_type]
        lo, hi = rows(block)
        found.append(Found(block, block, parts[-1], _HCL_KINDS.get(block_type, "block"), ".".join(parts[:-1]), lo, hi))
    return found


def _dockerfile_stages(root: Any, lines: list[str]) -> list[Found]:
    """Build stages: each `FROM` up to the line before the next `FROM` (blank lines at the end left out)."""
    froms = [c for c in root.named_children if c.type == "from_instruction"]
    found: list[Found] = []
    last_row = len(lines) - 1
    for i, node in enumerate(froms):
        lo = node.start_point.row
        hi = froms[i + 1].start_point.row - 1 if i + 1 < len(froms) else last_row
        while hi > lo and not lines[hi].strip():
            hi -= 1
        alias = next((c for c in node.named_children if c.type == "image_alias"), None)
        image = next((c for c in node.named_children if c.type == "image_spec"), None)
        name = node_text(alias) or node_text(image) or f"stage{i}"
        found.append(Found(node, node, name, "stage", "", lo, hi))
    return found


# ---------------------------------------------------------------------------------------------------
# The per-language table
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LanguageSpec:
    """What counts as a definition in one grammar.

    `defs` maps a node type to its kind; `describe` names such a node (and may refine its kind, or reject
    it: a C `struct foo` without a body is a use); `wrappers` are node types that wrap exactly one definition
    (decorators, `export`, `template<...>`) and so belong to its range; `separator` joins qualified names.
    `find`, when set, replaces the node-type search: the language's definitions are found by position.
    """

    defs: dict[str, str]
    describe: Describer = _by_name_field
    wrappers: frozenset[str] = frozenset()
    separator: str = "."
    find: Finder | None = None


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

LANGUAGES: dict[str, LanguageSpec] = {
    "python": LanguageSpec(
        {"function_definition": "function", "class_definition": "class"},
        wrappers=frozenset({"decorated_definition"}),
    ),
    "javascript": LanguageSpec(_JS_DEFS, _describe_js, _JS_WRAPPERS),
    "typescript": LanguageSpec(_TS_DEFS, _describe_js, _JS_WRAPPERS),
    "tsx": LanguageSpec(_TS_DEFS, _describe_js, _JS_WRAPPERS),
    "go": LanguageSpec(
        {"function_declaration": "function", "method_declaration": "method", "type_spec": "type"},
        _describe_go,
        frozenset({"type_declaration"}),
    ),
    "java": LanguageSpec(
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
    "rust": LanguageSpec(
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
        },
        _describe_rust,
    ),
    "c": LanguageSpec(
        {"function_definition": "function", **_C_LIKE_TYPES}, _describe_c_family, frozenset({"type_definition"})
    ),
    "cpp": LanguageSpec(
        {
            "function_definition": "function",
            "class_specifier": "class",
            "namespace_definition": "module",
            **_C_LIKE_TYPES,
        },
        _describe_c_family,
        frozenset({"type_definition", "template_declaration"}),
    ),
    "csharp": LanguageSpec(
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
    "ruby": LanguageSpec(
        {"class": "class", "module": "module", "method": "method", "singleton_method": "method"}, _describe_ruby
    ),
    "php": LanguageSpec(
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
    "kotlin": LanguageSpec(
        {
            "class_declaration": "class",
            "object_declaration": "class",
            "companion_object": "class",
            "function_declaration": "function",
        },
        _describe_kotlin,
    ),
    "bash": LanguageSpec({"function_definition": "function"}),
    "yaml": LanguageSpec({}, find=_yaml_definitions),
    "hcl": LanguageSpec({}, find=_hcl_definitions),
    "dockerfile": LanguageSpec({}, find=_dockerfile_stages),
    "markdown": LanguageSpec({"section": "section"}, _describe_markdown, separator=" > "),
}

_CLASS_LIKE = frozenset({"class", "interface", "struct", "enum", "impl"})
_SIGNATURE_CHARS = 120


# ---------------------------------------------------------------------------------------------------
# Finding definitions
# ---------------------------------------------------------------------------------------------------


def extract_definitions(text: str, language: str) -> list[Definition]:
    """Every definition tree-sitter finds in `text` (nested ones included), sorted by start line.

    Empty for languages without a grammar here or when parsing fails. Lines are 1-based and inclusive.
    """
    if language not in LANGUAGES or not text:
        return []
    try:
        tree = parse(language, text)
        defs, _ = find_definitions(tree.root_node, language, text.split("\n"))
    except Exception:  # noqa: BLE001
        log.debug("definition extraction failed", exc_info=True)
        return []
    return [d.public() for d in defs]


def find_definitions(root: Any, language: str, lines: list[str]) -> tuple[list[Def], dict[int, Def]]:
    """Definitions with qualified names and parents, sorted by start (outermost first), and a map from
    the id of the node each one occupies (its wrapper, e.g. decorators or `export`, included) to it."""
    spec = LANGUAGES[language]
    found = spec.find(root, lines) if spec.find is not None else _found_by_type(root, language, spec)
    found.sort(key=lambda f: (f.outer.start_byte, -f.outer.end_byte))
    defs: list[Def] = []
    ids: dict[int, Def] = {}
    open_defs: list[tuple[int, Def]] = []  # (end byte, definition) of the definitions enclosing this one
    for f in found:
        while open_defs and open_defs[-1][0] <= f.outer.start_byte:
            open_defs.pop()
        parent = open_defs[-1][1] if open_defs and open_defs[-1][0] >= f.outer.end_byte else None
        d = _definition(f, parent, spec, lines)
        defs.append(d)
        ids[f.outer.id] = d
        open_defs.append((f.outer.end_byte, d))
    defs.sort(key=lambda d: (d.lo, -d.hi))
    return defs, ids


def _found_by_type(root: Any, language: str, spec: LanguageSpec) -> list[Found]:
    found = []
    for node in nodes_of_types(root, language, spec.defs):
        described = spec.describe(node, spec.defs[node.type])
        if described is not None and described[0]:
            outer = _outer(node, spec.wrappers)
            found.append(Found(outer, node, *described, *rows(outer)))
    return found


def _definition(f: Found, parent: Def | None, spec: LanguageSpec, lines: list[str]) -> Def:
    """`f` with its qualified name (under `parent`), its kind in context and its trimmed extent."""
    kind = "method" if f.kind == "function" and parent is not None and parent.kind in _CLASS_LIKE else f.kind
    qualified = f"{f.prefix}{spec.separator}{f.name}" if f.prefix else f.name
    if parent is not None:
        qualified = f"{parent.qualified}{spec.separator}{qualified}"
    lo, hi = f.lo, f.hi
    while hi > lo and not lines[hi].strip():  # Markdown sections and YAML pairs end after blank lines
        hi -= 1
    sig_row = f.node.start_point.row
    signature = lines[sig_row].strip() if sig_row < len(lines) else f.name
    return Def(f.name, qualified, kind, lo, hi, _trim_signature(signature) or f"{kind} {f.name}", parent)


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
