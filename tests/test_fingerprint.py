from __future__ import annotations

import os

from catalog.files import fingerprint_mismatches
from shopthelook.core.fingerprint import file_fingerprint


def test_file_fingerprint_changes_with_the_bytes(tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"a" * 1000)
    first = file_fingerprint(weights)
    assert first is not None and len(first) == 16
    assert file_fingerprint(weights) == first
    weights.write_bytes(b"b" * 1000)
    os.utime(weights, ns=(1, 1))  # even with a forged mtime the size+mtime key changes
    assert file_fingerprint(weights) != first
    assert file_fingerprint(tmp_path / "missing.bin") is None


def test_fingerprint_mismatches_names_only_recorded_blocks_that_differ():
    manifest = {"weights_fingerprints": {"yolo": "aaa", "effnet-lite2": "bbb"}}
    assert fingerprint_mismatches(manifest, {"yolo": "aaa", "effnet-lite2": "bbb"}) == []
    assert fingerprint_mismatches(manifest, {"yolo": "zzz", "hvf": "x"}) == ["yolo"]
    assert fingerprint_mismatches({}, {"yolo": "zzz"}) == []  # catalogs from before the field
