"""Progress bars: redrawn in place on a terminal, plain lines in a log."""

from __future__ import annotations

import io

import pytest

from conftest import run
from landscape.io import bars
from landscape.io.bars import progress_bar
from test_map_cmd import FAST_AD, WELLS


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def work(stream: io.StringIO, n: int = 1000, leave: bool = True) -> str:
    bar = progress_bar(total=n, desc="work", unit="step", leave=leave, stream=stream)
    for i in range(n):
        bar.update(1)
        bar.set_postfix_str(f"detail {i}")  # redraws the bar at once, as the mapper's details do
    bar.close()
    return stream.getvalue()


def test_in_a_log_a_short_bar_writes_its_last_state_only(monkeypatch):
    monkeypatch.setattr(bars, "LOG_EVERY", 3600.0)
    text = work(io.StringIO())
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 1  # no line at 0 % before it
    assert lines[0].startswith("work: 100%") and "1000/1000" in lines[0] and "detail 999" in lines[0]


def test_a_log_line_is_never_cut(monkeypatch):
    monkeypatch.setattr(bars, "LOG_EVERY", 3600.0)
    stream = io.StringIO()
    bar = progress_bar(total=3, desc="train a-long-preset-name", unit="upd", stream=stream)
    bar.update(3)
    stats = {f"statistic_{k}": f"{k}.0123" for k in range(8)}  # as training shows its d_st, v_t, r_t
    bar.set_postfix(stats, refresh=False)
    bar.close()
    last = stream.getvalue().splitlines()[-1]
    assert "3/3" in last and all(f"{k}={v}" in last for k, v in stats.items())


def test_in_a_log_a_bar_writes_a_line_per_interval(monkeypatch):
    monkeypatch.setattr(bars, "LOG_EVERY", 0.0)
    lines = work(io.StringIO(), n=20).splitlines()
    assert len(lines) > 20 and all(line.startswith("work:") for line in lines)


def test_a_short_bar_that_does_not_stay_leaves_no_line(monkeypatch):
    monkeypatch.setattr(bars, "LOG_EVERY", 3600.0)
    assert work(io.StringIO(), leave=False) == ""


def test_a_long_bar_that_does_not_stay_ends_its_lines_with_its_last_state(monkeypatch):
    monkeypatch.setattr(bars, "LOG_EVERY", 0.0)
    stream = io.StringIO()
    bar = progress_bar(total=1000, desc="work", unit="step", leave=False, stream=stream)
    for _ in range(1000):
        bar.update(1)  # (tqdm redraws at most every 0.1 s: the loop's last state is not drawn)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("work:   0%")
    assert lines[-1].startswith("work: 100%") and "1000/1000" in lines[-1]


def test_on_a_terminal_the_bar_is_redrawn_in_place():
    text = work(Terminal())
    assert text.count("\r") > 10 and text.count("\n") <= 1


@pytest.mark.slow
def test_a_map_run_in_a_batch_job_logs_lines_not_carriage_returns(capsys, tmp_path, monkeypatch):
    (tmp_path / "pot.py").write_text(WELLS)
    args = ("map", "--energy", f"{tmp_path / 'pot.py'}:wells", "--shape", "2", "--box", "-1.6", "1.6", "--float64",
            "--chains", "8", *FAST_AD)
    code, out, err = run(capsys, *args, "--out", tmp_path / "m.h5")
    assert code == 0
    assert "minima from 16 chains" in out  # the stages' findings, and no bar of stages over in seconds
    assert err == ""
    monkeypatch.setattr(bars, "LOG_EVERY", 0.0)  # stages as long as a line's interval: their lines, and their ends
    code, _, err = run(capsys, *args, "--out", tmp_path / "m2.h5")
    assert code == 0 and "\r" not in err
    lines = err.splitlines()
    assert any(line.startswith("exploration chains:") for line in lines)
    straight = [line for line in lines if line.startswith("neighbour barriers (straight lines):")]
    assert straight and "100%" in straight[-1] and "pair" in straight[-1]
