"""The syntax planner: a tree-sitter tree → pieces, definitions whole when they fit, else split at children.

A span too large for the bound is partitioned at its children's boundaries (a class into its methods, a
function into runs of statements), recursively; a span with nowhere to cut becomes line windows. Children
on one row are never cut apart, comments directly above a definition stay with it, and a definition that
runs past its node (a Dockerfile stage) keeps the rows up to its end.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from codesense_ray.chunking.definitions import Def, find_definitions
from codesense_ray.chunking.grammars import extent, parse, rows
from codesense_ray.chunking.packing import Budget, Piece, Plan, merge

# Tree nodes `SyntaxPlanner._children` may look at while searching one span for a place to cut; past it the
# span is cut into line windows instead (only pathological inputs, such as a few enormous lines, get there).
_DESCENT_WORK = 50_000


@dataclass
class _Span:
    lo: int
    hi: int
    nodes: list[Any]
    defn: Def | None
    owner: Def | None


@dataclass
class _Group:
    lo: int
    hi: int
    nodes: list[Any] = field(default_factory=list)
    defn: Def | None = None
    trivia: bool = True


def _is_trivia(node: Any) -> bool:
    t = node.type
    return "comment" in t or t in ("attribute_item", "decorator", "annotation")


class SyntaxPlanner:
    """Turns a tree-sitter tree into pieces: definitions whole when they fit, else split at children."""

    def __init__(self, lines: list[str], text: str, language: str, budget: Budget, min_tokens: int) -> None:
        self.lines = lines
        self.text = text
        self.language = language
        self.budget = budget
        self.min_tokens = min_tokens

    def plan(self) -> Plan | None:
        """The plan, or None when the tree is mostly syntax errors (text chunking does better then)."""
        tree = parse(self.language, self.text)
        root = tree.root_node
        last = len(self.lines) - 1
        if _mostly_errors(root, last + 1):
            return None
        self.defs, self.def_ids = find_definitions(root, self.language, self.lines)
        self.def_starts = [d.lo for d in self.defs]
        pieces: list[Piece] = []
        stack = [_Span(0, last, [root], None, None)]
        while stack:
            span = stack.pop()
            anchor = span.defn or span.owner
            header = self.budget.header(anchor)
            keep_whole = span.defn is not None or not self._contains_definition(span)
            if keep_whole and self.budget.fits(span.lo, span.hi, header):
                size = self.budget.size(span.lo, span.hi)
                whole = span.defn is not None
                pieces.append(Piece(span.lo, span.hi, anchor, whole, size if whole else 0, size))
                continue
            children = self._children(span)
            if children is None:
                pieces.extend(self.budget.windows(span.lo, span.hi, anchor))
            else:
                stack.extend(reversed(children))
        default_kind = "text" if self.language == "markdown" else "code"
        return Plan(merge(pieces, self.budget, self.min_tokens), self.defs, default_kind)

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
        groups = self._cut(span)
        if groups is None:
            return None
        if len(groups) == 1:  # one definition fills the span: it becomes the span's definition
            return [_Span(span.lo, span.hi, groups[0].nodes, groups[0].defn, owner)]
        groups = _attach_leading_trivia(_absorb_extents(groups))
        groups[0].lo = span.lo
        for prev, cur in zip(groups, groups[1:]):
            cur.lo = prev.hi + 1
        groups[-1].hi = span.hi
        spans = [_Span(g.lo, g.hi, g.nodes, g.defn, owner) for g in groups]
        if span.defn is not None:
            self._open_body(spans)
        return spans

    def _cut(self, span: _Span) -> list[_Group] | None:
        """The first tree level, going down from the span's nodes, whose children fall into more than one
        group of rows; or a single group holding a definition that fills the span; None when neither is
        found (a leaf, or too much work)."""
        nodes = span.nodes
        work = 0
        while work < _DESCENT_WORK:  # each round descends one tree level; very wide single-group levels give up
            if len(nodes) > 1:
                groups = self._group(nodes, span)
                if len(groups) > 1:
                    return groups
                big = max(range(len(nodes)), key=lambda i: extent(nodes[i]))
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
                return groups
            if not groups:
                return None
            only = groups[0]
            if only.defn is not None:
                return [only]
            nodes = only.nodes
        return None

    def _open_body(self, spans: list[_Span]) -> None:
        """A definition being split: open its body (the largest part) too, so that the signature packs
        with the first statements or members instead of ending up alone. Three levels reach the
        statements through a wrapper: decorated_definition → function_definition → block."""
        for _ in range(3):
            body = max(range(len(spans)), key=lambda i: spans[i].hi - spans[i].lo)
            if spans[body].defn is not None or len(spans[body].nodes) != 1:
                break
            inner = self._children(spans[body])
            if inner is None or len(inner) < 2:
                break
            spans[body : body + 1] = inner

    def _group(self, units: list[Any], span: _Span) -> list[_Group]:
        """Units merged into groups of rows: units sharing a row can only be cut apart mid-line, so never."""
        groups: list[_Group] = []
        for node in units:
            lo, hi = rows(node)
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
            lo, hi = rows(child)
            error_rows += hi - lo + 1
    return error_rows * 2 > n_lines
