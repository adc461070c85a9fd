"""The command line under misuse: bad --top-k, a closed pipe, a busy port, a resumed match,
progress bars in log files."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shopthelook.cli import main
from tests.conftest import draw_image
from tests.helpers import build_cli, write_products
from tests.helpers import run_cli as run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def catalog(tmp_path, capsys):
    csv = write_products(tmp_path / "src", 9)
    code, _, err = build_cli(capsys, csv, tmp_path / "cat")
    assert code == 0, err
    return tmp_path / "cat"


@pytest.mark.parametrize(
    "value, needle", [("0", "at least 1"), ("-5", "at least 1"), ("many", "not a whole number")]
)
def test_bad_top_k_is_refused_with_a_clear_error(tmp_path, capsys, value, needle):
    for command in (
        ["look", tmp_path / "x.png"],
        ["match", "--scenes", tmp_path, "--out", tmp_path / "o"],
    ):
        with pytest.raises(SystemExit) as info:  # refused before anything is loaded
            main([*map(str, command), "--catalog", str(tmp_path / "cat"), "--top-k", value])
        err = capsys.readouterr().err
        assert info.value.code == 2 and "--top-k" in err and needle in err
        assert "Traceback" not in err


def test_a_huge_top_k_is_capped_and_says_so(capsys):
    from shopthelook.cli import build_parser
    from shopthelook.commands import MAX_TOP_K, top_k_arg

    assert top_k_arg("100000") == MAX_TOP_K
    assert f"using {MAX_TOP_K}" in capsys.readouterr().err
    assert top_k_arg("7") == 7
    for command in (["look", "x.png"], ["match", "--scenes", "s", "--out", "o"]):
        args = build_parser().parse_args([*command, "--catalog", "c", "--top-k", "100000"])
        assert args.top_k == MAX_TOP_K


def test_a_closed_pipe_ends_quietly(catalog):
    """`shopthelook ... | head`: the reader is gone before the command writes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "shopthelook.cli", "catalog", "info", str(catalog)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # as head does once it has its lines
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_serve_on_a_busy_port_says_so_before_loading_anything(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # the catalog does not even exist: the port is checked first, within a moment
        code, _, err = run(capsys, "serve", "--catalog", tmp_path / "none", "--port", port)
    assert code == 1 and "Traceback" not in err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "in use" in err and "--port" in err


def test_progress_bars_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    from shopthelook.commands import show_progress

    csv = write_products(tmp_path / "src", 3)
    code, _, err = build_cli(capsys, csv, tmp_path / "c", quiet=False)
    assert code == 0 and "embedding products" not in err  # stderr is no terminal here

    class Args:
        quiet = False

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert show_progress(Args())
    Args.quiet = True
    assert not show_progress(Args())


@pytest.mark.shared
def test_a_resumed_match_counts_the_failures_in_its_output(catalog, tmp_path, capsys, yolo_weights):
    folder = tmp_path / "scenes"
    folder.mkdir()
    draw_image(20, (120, 100)).save(folder / "s0.png")
    (folder / "broken.jpg").write_text("not an image")
    out = tmp_path / "matches.jsonl"
    args = ("match", "--catalog", catalog, "--scenes", folder, "--out", out, "--top-k", "3")
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and "failures: 1" in stdout
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and "2 already done, 0 processed" in stdout
    assert "failures: 1 (0 in this run, 1 already in the output" in stdout
