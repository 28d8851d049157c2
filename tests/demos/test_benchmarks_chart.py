"""``--chart``: y axes from 0, and one concurrency drawn as bars."""
import pytest

from genloop.demos.benchmarks import Row, _chart

plt = pytest.importorskip("matplotlib.pyplot", reason="matplotlib is an optional extra: pip install 'genloop[plot]'")


def rows(*concurrency):
    return [Row(style, c, rps, 0.001, 0.002 * (i + 1), 0, 1 << 20, 1, 10.0)
            for c in concurrency for i, (style, rps) in enumerate((("threads", 1210.0), ("coroutines", 1290.0)))]


def drawn(monkeypatch, tmp_path, data):
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    _chart(data, tmp_path / "chart.png", "t")
    assert (tmp_path / "chart.png").stat().st_size > 0
    return figures[0].axes


def test_axes_start_at_zero(monkeypatch, tmp_path):
    for axes in drawn(monkeypatch, tmp_path, rows(10, 100, 1000)):
        assert axes.get_ylim()[0] == 0
        assert len(axes.lines) == 2


def test_one_concurrency_is_drawn_as_bars(monkeypatch, tmp_path):
    throughput, p99 = drawn(monkeypatch, tmp_path, rows(100))
    assert [p.get_height() for p in throughput.patches] == [1210.0, 1290.0] and not throughput.lines
    assert [t.get_text() for t in throughput.get_xticklabels()] == ["threads", "coroutines"]
    assert throughput.get_ylim()[0] == 0 and p99.get_ylim()[0] == 0 and len(p99.patches) == 2
