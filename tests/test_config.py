"""Settings: defaults, TOML file, environment and explicit overrides, and validation."""

from __future__ import annotations

import pytest

from shopthelook.core.config import Settings, load_settings
from shopthelook.core.errors import ConfigError


def test_precedence_defaults_file_env_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPTHELOOK_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_settings().backbone == Settings().backbone == "effnet-lite0"
    cfg = tmp_path / "s.toml"
    cfg.write_text('backbone = "hvf"\ntop_k = 7\nthreads = 1\n')
    assert (load_settings(cfg).backbone, load_settings(cfg).top_k) == ("hvf", 7)
    monkeypatch.setenv("SHOPTHELOOK_TOP_K", "3")
    assert load_settings(cfg).top_k == 3
    assert load_settings(cfg, top_k=5).top_k == 5
    (tmp_path / "shopthelook.toml").write_text("[shopthelook]\nmax_objects = 4\n")
    assert load_settings().max_objects == 4


def test_bad_settings_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("backbone = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
    bad.write_text("colour = 'red'\n")
    with pytest.raises(ConfigError, match=r"unknown settings \['colour'\]"):
        load_settings(bad)
    monkeypatch.setenv("SHOPTHELOOK_THREADS", "many")
    with pytest.raises(ConfigError, match="threads='many': expected int"):
        load_settings()
    monkeypatch.delenv("SHOPTHELOOK_THREADS")
    with pytest.raises(ConfigError, match="detection_confidence"):
        load_settings(detection_confidence=1.5)


def test_shared_defaults_point_at_the_data_and_weights(shared_root):
    s = load_settings()
    assert s.data_root == shared_root / "data"
    assert s.detector_weights.endswith("yolov8n-coco.pt")


def test_applying_threads_holds_every_blas_at_one_thread():
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    from shopthelook.core.config import apply_threads

    with threadpool_limits(2, user_api="blas"):
        assert any(i["num_threads"] == 2 for i in threadpool_info() if i["user_api"] == "blas")
        apply_threads(2)
        np.ones((64, 64)) @ np.ones((64, 64))
        blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and set(blas) == {1}
