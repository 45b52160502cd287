from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llms.stops import StopFilter, cut_at_stop


def run_filter(deltas: list[str], stops: tuple[str, ...]) -> str:
    stop_filter = StopFilter(stops)
    out = []
    for delta in deltas:
        out.append(stop_filter.feed(delta))
        if stop_filter.stopped:
            break
    out.append(stop_filter.flush())
    return "".join(out)


def test_cut_at_earliest_stop() -> None:
    assert cut_at_stop("one two three", ("three", "two")) == ("one ", True)
    assert cut_at_stop("one two", ("four", "")) == ("one two", False)


def test_stop_split_across_deltas_is_held_back() -> None:
    stop_filter = StopFilter(("END",))
    assert stop_filter.feed("abc E") == "abc "
    assert stop_filter.feed("N") == ""
    assert stop_filter.feed("D tail") == ""
    assert stop_filter.stopped


def test_false_alarm_is_released() -> None:
    stop_filter = StopFilter(("END",))
    assert stop_filter.feed("abc EN") == "abc "
    assert stop_filter.feed("x") == "ENx"
    assert stop_filter.flush() == ""


@given(
    text=st.text(alphabet="abE\nND ", max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=8),
    stops=st.lists(st.text(alphabet="abEND\n", min_size=1, max_size=4), max_size=3),
)
def test_stream_joins_to_cut_text(text: str, cuts: list[int], stops: list[str]) -> None:
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    deltas = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert run_filter(deltas, tuple(stops)) == cut_at_stop(text, tuple(stops))[0]
