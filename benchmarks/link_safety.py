"""Cost of link safety: verifying an answer once, and streaming it through the verified-stream gate.

A synthetic model answer of N characters (prose, citations, code spans, a fenced block, some foreign links) is
verified in one go (`verify_citations`, what a non-streamed `/v1/ask` pays) and streamed in small deltas through
`VerifiedStream` (what `stream: true` pays on top of generation). Prints wall time per answer and the latency of the
first released token in characters.

    .venv/bin/python benchmarks/link_safety.py [--chars 3000] [--delta 4] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codesense_ray.answering.citations import ContextBlock, StreamVerifier, verify_citations  # noqa: E402
from codesense_ray.answering.verified_stream import VerifiedStream  # noqa: E402

URL = "https://gitlab.example.com/team/payments/-/blob/4f1c2ab/app/auth/jwt.py#L10-42"
BLOCKS = [ContextBlock(1, "payments", "app/auth/jwt.py", 10, 42, URL, "def verify_token(token): ...", "verify_token", "4f1c2ab")]
PARAGRAPH = (
    "Tokens are verified in `verify_token` [1], which checks the signature and the expiry before the handler runs. "
    "See app/auth/jwt.py (lines 12-20) for the claims, and [the guide](https://evil.example/guide) [9] for more.\n\n"
    "```python\nclaims = verify_token(raw)\n```\n\n"
)


def answer(chars: int) -> str:
    return (PARAGRAPH * (chars // len(PARAGRAPH) + 1))[:chars]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chars", type=int, default=3000)
    p.add_argument("--delta", type=int, default=4, help="characters per streamed delta (a token is ~4)")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    text = answer(args.chars)
    lookup = {("payments", "app/auth/jwt.py"): 120}.get
    once, streamed, first = [], [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        verify_citations(text, BLOCKS, lambda r, pth: lookup((r, pth)))
        once.append(time.perf_counter() - t0)
        gate = VerifiedStream(StreamVerifier(BLOCKS, lambda r, pth: lookup((r, pth))))
        t0 = time.perf_counter()
        first_at = None
        for i in range(0, len(text), args.delta):
            if gate.feed(text[i : i + args.delta]) and first_at is None:
                first_at = i + args.delta
        streamed.append(time.perf_counter() - t0)
        first.append(first_at or len(text))
    print(f"answer: {len(text)} chars, streamed in {args.delta}-char deltas, {args.repeat} runs")
    print(f"verify once:       median {statistics.median(once) * 1000:.1f} ms")
    print(f"stream gate total: median {statistics.median(streamed) * 1000:.1f} ms ({len(text) // args.delta} deltas)")
    print(f"first token after: {statistics.median(first):.0f} chars of model output")


if __name__ == "__main__":
    main()
