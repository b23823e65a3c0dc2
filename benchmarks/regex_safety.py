"""Adversarial inputs against every function whose regexes see user text: no catastrophic backtracking.

User text reaches regexes through the query/question (lexical parsing, input checks), through model output
(the stream's link mask, citation checking — a model can be made to echo the question) and through indexed
file content (sparse vectors of chunks). Each target below runs on pumped inputs built to make
backtracking engines explode ("a+" repeated, long runs without the character a pattern waits for, nested
separators). A linear implementation handles 200,000 characters in milliseconds; the quadratic path-mention
pattern this replaced needed minutes (30 s at 100,000 characters).

    .venv/bin/python benchmarks/regex_safety.py                    # table of seconds per target and input
    .venv/bin/python benchmarks/regex_safety.py --bound 2          # exit 1 if any (target, input) takes longer
    .venv/bin/python benchmarks/regex_safety.py --only query_paths --size 200000 --json out.json

tests/cpu/integration/hardening/test_regex_safety.py runs each target in a subprocess under a generous timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> (n characters -> adversarial text)
INPUTS: dict[str, Callable[[int], str]] = {
    "a+ repeated": lambda n: "a+" * (n // 2),
    "a+ then .py": lambda n: "a+" * (n // 2 - 3) + ".py",
    "letters": lambda n: "a" * n,
    "CAPITALS": lambda n: "A" * n,
    "aA alternating": lambda n: "aA" * (n // 2),
    "A then a": lambda n: "A" * (n - 1) + "a",
    "digits": lambda n: "1" * n,
    "underscores": lambda n: "_" * n,
    "a_ repeated": lambda n: "a_" * (n // 2),
    "dotted a.": lambda n: "a." * (n // 2),
    "dotted a.b then !": lambda n: "ab." * (n // 3) + "!",
    "slashes a/": lambda n: "a/" * (n // 2),
    "dirs then .py": lambda n: "a/" * (n // 2 - 3) + ".py",
    "mixed path chars": lambda n: "a.@+-/" * (n // 6),
    "many .py": lambda n: "x.py" * (n // 4),
    "many .py/": lambda n: "x.py/" * (n // 5),
    "scheme-like": lambda n: "http:" * (n // 5),
    "url without space": lambda n: "http://" + "a" * (n - 7),
    "no :// run": lambda n: "a" * (n - 1) + " ",
    "backticks": lambda n: "`" * n,
    "open backtick": lambda n: "`" + "a" * (n - 1),
    "File \" unclosed": lambda n: 'File "' + "a" * (n - 6),
    "File \" repeated": lambda n: 'File "a", line ' * (n // 15),
    "blank lines": lambda n: "\n" * n,
    "newline spaces": lambda n: "\n" + " " * (n - 1),
    "newline space pairs": lambda n: "\n " * (n // 2),
    "tabs": lambda n: "\t" * n,
    "brackets [": lambda n: "[" * n,
    "citation [1,": lambda n: "[1," * (n // 3),
    "citation [1-": lambda n: "[1" + "-1" * (n // 2 - 1),
    "md link [a](": lambda n: "[a](" * (n // 4),
    "parens (a": lambda n: "(a" * (n // 2),
    "fences": lambda n: "```\n" * (n // 4),
    "www.": lambda n: "www." * (n // 4),
    "path:line": lambda n: "a/b.py:" * (n // 7),
    "accented": lambda n: "é" * n,
    "emoji": lambda n: "😀" * n,
}


def _targets() -> dict[str, Callable[[str], object]]:
    """Every function whose regexes see user text, each as text -> anything."""
    from codesense_ray.answering.answerer import check_question
    from codesense_ray.answering.citations import StreamVerifier, verify_citations
    from codesense_ray.answering.markdown_links import scan_markdown
    from codesense_ray.answering.verified_stream import VerifiedStream
    from codesense_ray.index import lexical
    from codesense_ray.retrieval.query_guard import check_query
    from codesense_ray.index.secrets import scrub_secrets

    def guarded(check: Callable[[str], object]) -> Callable[[str], object]:
        # The input checks reject long text by design; what matters is that nothing before that rejection backtracks.
        def run(text: str) -> object:
            try:
                return check(text)
            except Exception as err:  # InvalidQuery / InvalidQuestion
                return err

        return run

    def stream_mask(text: str) -> str:
        # The SSE gate: what a streamed answer passes through before any token is sent.
        gate = VerifiedStream(StreamVerifier([], lambda repo, path: None))
        return gate.feed(text)

    return {
        "code_tokens": lexical.code_tokens,
        "query_sparse_vector": lexical.query_sparse_vector,
        "document_sparse_vector": lambda t: lexical.document_sparse_vector(t, "a/b.py"),
        "query_identifiers": lexical.query_identifiers,
        "query_paths": lexical.query_paths,
        "traceback_functions": lexical.traceback_functions,
        "split_passages": lexical.split_passages,
        "path_suffixes": lexical.path_suffixes,
        "path_tokens": lexical.path_tokens,
        "split_identifier": lexical.split_identifier,
        "check_query": guarded(lambda t: check_query(t, 10**7)),
        "check_question": guarded(lambda t: check_question(t, 10**7)),
        "stream_link_mask": stream_mask,
        "verify_citations": lambda t: verify_citations(t, []),
        "scan_markdown": scan_markdown,
        "scrub_secrets": lambda t: scrub_secrets(t, "a/b.py"),
    }


TARGETS = sorted(
    (
        "code_tokens query_sparse_vector document_sparse_vector query_identifiers query_paths traceback_functions split_passages "
        "path_suffixes path_tokens split_identifier check_query check_question stream_link_mask verify_citations scrub_secrets"
    ).split()
)


def measure(names: list[str], size: int) -> list[dict]:
    targets = _targets()
    rows = []
    for name in names:
        fn = targets[name]
        for label, make in INPUTS.items():
            text = make(size)
            started = time.perf_counter()
            fn(text)
            rows.append({"target": name, "input": label, "chars": len(text), "seconds": round(time.perf_counter() - started, 4)})
            print(f"{name:<24} {label:<22} {len(text):>8} chars  {rows[-1]['seconds']:8.4f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=100_000, help="characters per adversarial input (default 100000)")
    p.add_argument("--only", action="append", choices=TARGETS, help="run only this target (repeatable)")
    p.add_argument("--bound", type=float, default=None, help="exit 1 when any (target, input) takes longer than this many seconds")
    p.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = p.parse_args(argv)
    rows = measure(args.only or TARGETS, args.size)
    worst = max(rows, key=lambda r: r["seconds"])
    print(f"worst: {worst['target']} on {worst['input']!r}: {worst['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "rows": rows, "worst": worst}, indent=2))
    if args.bound is not None and worst["seconds"] > args.bound:
        print(f"regex safety: {worst['target']} took {worst['seconds']} s on {worst['input']!r} (bound {args.bound} s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
