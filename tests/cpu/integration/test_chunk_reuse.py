"""Chunk-level reuse on real components: embedded Qdrant, the packaged MiniLM, in-process stages and Ray Data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codesense_ray.index.chunk_reuse import stored_embed_hash
from codesense_ray.config import load_config
from codesense_ray.app.compose import build_indexer
from codesense_ray.store.qdrant import DENSE, IndexStore, open_client
from tests.conftest import write_config

pytestmark = pytest.mark.slow

FUNCTIONS = 24


def big_module() -> str:
    """A module of many distinct functions, each large enough to be a chunk of its own."""
    parts = ['"""Ledger helpers."""\n']
    for i in range(FUNCTIONS):
        parts.append(
            f"def settle_account_{i}(ledger, account_id, amount_{i}):\n"
            f'    """Settle account {i}: move amount_{i} from the suspense entry into the ledger of account {i}."""\n'
            f"    entry = ledger.suspense.pop(account_id, None)\n"
            f"    if entry is None or entry.amount < amount_{i}:\n"
            f"        raise ValueError('account {i}: nothing to settle for ' + str(account_id))\n"
            f"    ledger.post(account_id, amount_{i}, memo='settlement batch {i} for region {i * 7}')\n"
            f"    ledger.audit.append(('settle_{i}', account_id, amount_{i}, entry.reference))\n"
            f"    return entry.amount - amount_{i}\n"
        )
    return "\n\n".join(parts)


def points(store: IndexStore, path: str) -> list:
    live = store.live_collection()
    return [p for p in store.scroll(live, with_vectors=True) if p.payload.get("path") == path]


def run_edit(tmp_path: Path, in_process_max_files: int):
    repo = tmp_path / "ledger"
    repo.mkdir()
    (repo / "ledger.py").write_text(big_module())
    (repo / "README.md").write_text("# Ledger\n\nSettles suspense entries into account ledgers.\n")
    write_config(tmp_path, [{"id": "ledger", "path": "ledger"}], index={"in_process_max_files": in_process_max_files})
    cfg = load_config(tmp_path / "codesense.yaml")
    store = IndexStore(open_client(cfg), cfg.index.collection, embedded=not cfg.qdrant.url)
    indexer = build_indexer(cfg, store)
    first = indexer.run()
    before = {stored_embed_hash(p.payload): p for p in points(store, "ledger.py")}
    # Edit one function in the middle; the extra line shifts every later chunk down by one.
    text = (repo / "ledger.py").read_text()
    target = "    return entry.amount - amount_12\n"
    assert target in text
    (repo / "ledger.py").write_text(text.replace(target, "    ledger.flush()\n    return entry.amount - amount_12 + 0\n"))
    second = indexer.run()
    after = points(store, "ledger.py")
    return first, second, before, after, (repo / "ledger.py").read_text().split("\n"), store


@pytest.mark.parametrize("in_process_max_files", [100, 0], ids=["in-process", "ray-data"])
def test_editing_one_function_embeds_only_its_chunk(tmp_path, monkeypatch, in_process_max_files):
    """Editing one function of a large file embeds only the chunk(s) it touched; the others keep their stored vectors."""
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    if in_process_max_files == 0:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        first, second, before, after, lines, store = run_edit(tmp_path, in_process_max_files)
    finally:
        if in_process_max_files == 0:
            import ray

            ray.shutdown()
    t1, t2 = first.totals(), second.totals()
    n_file = len(after)
    assert n_file >= FUNCTIONS // 2  # a large file: many chunks
    assert t2["files_changed"] == 1
    assert 1 <= t2["chunks_embedded"] <= 2, t2
    assert t2["chunks_reused"] == t2["chunks_total"] - t2["chunks_embedded"] == t1["chunks_total"] - t2["chunks_embedded"]
    assert t2["chunks_deleted"] == t2["chunks_embedded"]  # the edited chunk's old text is gone; nothing else
    reused = 0
    for p in after:
        old = before.get(stored_embed_hash(p.payload))
        # The payload is rewritten: the lines are those of the edited file, shifted chunks included.
        assert "\n".join(lines[p.payload["start_line"] - 1 : p.payload["end_line"]]) == p.payload["text"]
        if old is not None:
            reused += 1
            np.testing.assert_allclose(p.vector[DENSE], old.vector[DENSE], rtol=0, atol=1e-6)  # Qdrant re-normalises on write
        else:
            assert "amount_12 + 0" in p.payload["text"]
    assert reused == n_file - t2["chunks_embedded"]
    assert any(p.payload["start_line"] != before[stored_embed_hash(p.payload)].payload["start_line"] for p in after if stored_embed_hash(p.payload) in before)
    store.client.close()
