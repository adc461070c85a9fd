"""The catalog-matching batch job: one JSON line per scene, resumable, failures recorded.

A line is ``{"scene_id", "image", "objects": [...], "error": null | "message"}``. Scenes that
already have a line in the output are skipped, so a stopped job continues where it stopped;
``retry_failed`` drops earlier error lines first so those scenes run again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from shopthelook.core.errors import ShopTheLookError

log = logging.getLogger(__name__)


@dataclass
class MatchSummary:
    scenes: int = 0
    skipped: int = 0
    processed: int = 0
    failures: int = 0
    #: scenes skipped because the output already holds them, that failed in an earlier run
    earlier_failures: int = 0
    objects: int = 0
    scenes_with_objects: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        ok = self.processed - self.failures
        return self.scenes_with_objects / ok if ok else 0.0

    def lines(self) -> list[str]:
        rate = self.processed / self.seconds if self.seconds else 0.0
        return [
            f"scenes: {self.scenes} ({self.skipped} already done, {self.processed} processed, "
            f"{rate:.2f}/s)",
            f"objects: {self.objects} ({self.objects / max(1, self.processed - self.failures):.2f} per scene)",
            f"coverage: {self.coverage:.1%} of scenes had at least one detected object",
            self._failure_line(),
        ]

    def _failure_line(self) -> str:
        if not self.earlier_failures:
            return f"failures: {self.failures}"
        return (
            f"failures: {self.failures + self.earlier_failures} ({self.failures} in this run, "
            f"{self.earlier_failures} already in the output; --retry-failed runs them again)"
        )


def read_done(out: Path, retry_failed: bool) -> set[str]:
    """Scene ids already in ``out``; with retry_failed, error lines are removed first."""
    if not out.exists():
        return set()
    done, keep = set(), []
    with out.open() as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: the scene runs again
            if retry_failed and record.get("error"):
                continue
            done.add(str(record.get("scene_id")))
            keep.append(json.dumps(record))
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, out)  # also drops a torn last line
    return done


def failed_in(out: Path) -> set[str]:
    """Scene ids whose line in ``out`` records an error."""
    if not out.exists():
        return set()
    failed = set()
    with out.open() as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("error"):
                failed.add(str(record.get("scene_id")))
    return failed


def match_scene(
    pipeline,
    scene_id: str,
    image: str,
    *,
    top_k: int,
    adjective: str | None = None,
    whole_look=None,
) -> tuple[dict, int]:
    """One output line's record and its detected-object count (-1 when the scene failed);
    with a ``whole_look`` chooser (shopthelook.whole_look) the record has ``whole_look``."""
    record: dict = {"scene_id": scene_id, "image": image}
    try:
        result = pipeline.shop_the_look(image, top_k=top_k, adjective=adjective, scene_id=scene_id)
    except ShopTheLookError as exc:
        record.update({"objects": [], "error": str(exc)})
        return record, -1
    record.update(result.to_dict())
    if whole_look is not None:
        record["whole_look"] = whole_look.choose(result).to_dict()
    record["error"] = None
    return record, sum(o.detection.source == "detector" for o in result.objects)


def run_match(
    pipeline,
    scenes: pd.DataFrame,
    out: str | Path,
    *,
    top_k: int,
    retry_failed: bool = False,
    show_progress: bool = False,
    adjective: str | None = None,
    whole_look=None,
) -> MatchSummary:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read_done(out, retry_failed)
    todo = scenes[~scenes["scene_id"].astype(str).isin(done)]
    summary = MatchSummary(scenes=len(scenes), skipped=len(scenes) - len(todo))
    summary.earlier_failures = len(failed_in(out) & set(scenes["scene_id"].astype(str)))
    started = time.perf_counter()
    with out.open("a") as fh:
        for row in tqdm(
            todo.itertuples(index=False),
            total=len(todo),
            desc="matching scenes",
            unit="scene",
            disable=not show_progress,
        ):
            record, found = match_scene(
                pipeline,
                str(row.scene_id),
                str(row.image),
                top_k=top_k,
                adjective=adjective,
                whole_look=whole_look,
            )
            if found < 0:
                summary.failures += 1
                summary.errors.append(record["error"])
                log.warning("scene %s failed: %s", row.scene_id, record["error"])
            else:
                summary.objects += found
                summary.scenes_with_objects += found > 0
            summary.processed += 1
            fh.write(json.dumps(record) + "\n")
            fh.flush()
    summary.seconds = time.perf_counter() - started
    return summary
