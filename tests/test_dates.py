"""course_lib.data.dates: the date-format translation task of chapters 1 and 7."""

import datetime as dt

import pytest
import torch

from course_lib.data.dates import (
    FORMATS,
    CharVocab,
    exact_match,
    format_date,
    load_date_task,
    make_date_pairs,
    SOURCE_CHARS,
    TARGET_CHARS,
)


@pytest.fixture(scope="module")
def task():
    return load_date_task(n_train=3000, n_test=500, seed=1)


def test_pairs_are_deterministic_by_seed():
    assert make_date_pairs(200, seed=3) == make_date_pairs(200, seed=3)
    assert make_date_pairs(200, seed=3) != make_date_pairs(200, seed=4)
    assert make_date_pairs(50, seed=3) == make_date_pairs(200, seed=3)[:50]


def test_sources_are_distinct_and_targets_iso():
    pairs = make_date_pairs(3000, seed=0)
    sources = [s for s, _ in pairs]
    assert len(set(sources)) == len(sources)
    for _, target in pairs:
        assert dt.date.fromisoformat(target).isoformat() == target


def test_split_is_disjoint_and_sized(task):
    assert len(task.train) == 3000 and len(task.test) == 500
    assert not set(task.train.sources) & set(task.test.sources)
    default = load_date_task()  # the chapter's task: ~50,000 examples
    assert len(default.train) == 45_000 and len(default.test) == 5_000
    assert not set(default.train.sources) & set(default.test.sources)


def test_every_format_is_present_and_parses_back():
    pairs = make_date_pairs(3000, seed=0)
    date = dt.date(1994, 9, 27)
    written = {name: format_date(date, name) for name in FORMATS}
    assert len(FORMATS) >= 12
    assert len(set(written.values())) == len(FORMATS), "two formats write the same string"
    assert written["month d, yyyy"] == "september 27, 1994"
    assert written["m/d/yy"] == "9/27/94"
    assert written["WEEKDAY, MONTH d, yyyy"] == "TUESDAY, SEPTEMBER 27, 1994"
    assert written["d mon yyyy"] == "27 sep 1994"
    assert written["dd.mm.yyyy"] == "27.09.1994"
    assert written["the dth of month yyyy"] == "the 27th of september 1994"
    # every format occurs in the data: match each source against the formats of its own target date
    seen = set()
    for source, target in pairs:
        d = dt.date.fromisoformat(target)
        matches = [name for name, (_, yy) in FORMATS.items() if (not yy or 1950 <= d.year <= 2049) and format_date(d, name) == source]
        assert matches, f"{source!r} is in no known format for {target}"
        seen.update(matches)
    assert seen == set(FORMATS)


def test_weekday_names_are_real():
    # 2000-01-01 was a Saturday, 1969-07-20 a Sunday
    assert format_date(dt.date(2000, 1, 1), "WEEKDAY, MONTH d, yyyy").startswith("SATURDAY")
    assert format_date(dt.date(1969, 7, 20), "Wkd, d Mon yyyy") == "Sun, 20 Jul 1969"


def test_year_range_is_wide():
    years = [int(t[:4]) for _, t in make_date_pairs(5000, seed=0)]
    assert min(years) < 1910 and max(years) > 2090


def test_two_digit_years_are_unambiguous():
    assert format_date(dt.date(2007, 3, 4), "m/d/yy") == "3/4/07"
    with pytest.raises(ValueError, match="1950-2049"):
        format_date(dt.date(1920, 3, 4), "m/d/yy")


def test_vocab_round_trip_and_specials():
    vocab = CharVocab(SOURCE_CHARS)
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2)
    assert len(vocab) == len(SOURCE_CHARS) + 4
    for text in ("september 27, 1994", "27-SEP-94", "Tue, 27 Sep 1994"):
        assert vocab.decode(vocab.encode(text)) == text
    ids = vocab.encode("12") + [vocab.eos_id] + vocab.encode("34")
    assert vocab.decode(ids) == "12", "decode must stop at <eos>"
    assert vocab.decode([vocab.bos_id] + vocab.encode("ab") + [vocab.pad_id]) == "ab"
    assert vocab.decode(vocab.encode("a\u00e9b")) == "a?b", "unknown characters map to <unk>"


def test_encode_batch_fast_path_equals_slow_path():
    vocab = CharVocab(SOURCE_CHARS)
    texts = ["9/27/94", "TUESDAY, SEPTEMBER 27, 1994", "", "x#y"]
    batch = vocab.encode_batch(texts, length=30, bos=True, eos=True)
    for row, text in zip(batch.tolist(), texts):
        expected = [vocab.bos_id] + vocab.encode(text) + [vocab.eos_id]
        assert row == expected + [vocab.pad_id] * (30 - len(expected))
    mixed = vocab.encode_batch(["ab", "\u00e9t\u00e9"])  # non-ASCII: the slow path
    assert mixed.tolist() == [vocab.encode("ab") + [0], vocab.encode("\u00e9t\u00e9")]


def test_task_tensors_teacher_forcing(task):
    S, T = task.max_src_len, task.max_tgt_len
    assert task.train.src.shape == (3000, S) and task.test.src.shape == (500, S)
    assert task.train.tgt_in.shape == task.train.tgt_out.shape == (3000, T)
    tv = task.tgt_vocab
    assert (task.train.tgt_in[:, 0] == tv.bos_id).all()
    assert (task.train.tgt_out[:, -1] == tv.eos_id).all()  # ISO dates all have length T - 1
    assert torch.equal(task.train.tgt_in[:, 1:], task.train.tgt_out[:, :-1]), "tgt_in must be tgt_out shifted right"
    for n in (0, 7, 2999):
        source, target = task.train_pairs[n]
        assert task.src_vocab.decode(task.train.src[n]) == source
        assert tv.decode(task.train.tgt_out[n]) == target
        assert (task.train.src[n, len(source):] == task.src_vocab.pad_id).all()
    assert set(TARGET_CHARS) >= set("".join(task.test.targets))


def test_loader_batches(task):
    batches = list(task.loader("train", batch_size=256, seed=0))
    assert sum(b[0].shape[0] for b in batches) == 3000
    src, tgt_in, tgt_out = batches[0]
    assert src.shape == (256, task.max_src_len) and tgt_in.shape == tgt_out.shape == (256, task.max_tgt_len)
    again = next(iter(task.loader("train", batch_size=256, seed=0)))
    assert torch.equal(again[0], src), "shuffling must be deterministic by seed"
    test_first = next(iter(task.loader("test", batch_size=100)))
    assert torch.equal(test_first[0], task.test.src[:100]), "the test loader keeps the order"


def test_exact_match():
    assert exact_match(["1994-09-27", "2000-01-01"], ["1994-09-27", "2000-01-02"]) == 0.5
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        exact_match(["a", "b"], ["a"])
    with pytest.raises(TypeError):
        exact_match("abc", "abc")


def test_bad_inputs_raise():
    vocab = CharVocab(TARGET_CHARS)
    with pytest.raises(ValueError, match="non-negative int"):
        make_date_pairs(-1)
    with pytest.raises(ValueError, match="positive int"):
        load_date_task(n_train=0)
    with pytest.raises(KeyError, match="unknown date format"):
        format_date(dt.date(2000, 1, 1), "dd/mm/yyyy")
    with pytest.raises(TypeError, match="expects a str"):
        vocab.encode(123)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([999])
    with pytest.raises(ValueError, match="1-D"):
        vocab.decode(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="more than length"):
        vocab.encode_batch(["1234"], length=3)
    with pytest.raises(ValueError, match="duplicates"):
        CharVocab("aa")
    with pytest.raises(ValueError, match="split"):
        load_date_task(100, 10).loader("valid")


def test_bucketed_loader_trims_padding_and_covers_every_example(task):
    loader = task.loader("train", batch_size=100, seed=0, bucket=True)
    assert len(loader) == 30
    seen, widths = 0, []
    for src, tgt_in, tgt_out in loader:
        lengths = (src != task.src_vocab.pad_id).sum(1)
        assert src.shape[1] == int(lengths.max()), "each batch is cut to its longest source"
        assert lengths.max() - lengths.min() <= 3, "a bucket holds sources of similar length"
        seen += src.shape[0]
        widths.append(src.shape[1])
    assert seen == 3000
    assert sum(widths) / len(widths) < 0.8 * task.max_src_len
    first = [b[0] for b in task.loader("train", batch_size=100, seed=0, bucket=True)]
    second = [b[0] for b in task.loader("train", batch_size=100, seed=0, bucket=True)]
    assert all(torch.equal(a, b) for a, b in zip(first, second)), "bucketing is deterministic by seed"
