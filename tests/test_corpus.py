"""course_lib.data.corpus (the generated world) and course_lib.tokenization (WordPiece)."""

import pytest

from course_lib.data.corpus import (
    ANIMALS,
    CITY_COUNTRY,
    COLOUR_TEMPLATES,
    FRUIT,
    LIVES_TEMPLATES,
    World,
    make_corpus,
    vocabulary,
)
from course_lib.tokenization import SPECIAL_TOKENS, load_tokenizer, train_wordpiece


@pytest.fixture(scope="module")
def train():
    return make_corpus(1500, "train")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_corpus_is_deterministic():
    assert make_corpus(50).documents == make_corpus(50).documents
    assert make_corpus(50, seed=1).documents != make_corpus(50).documents
    assert World(0).people == World(0).people and World(1).people != World(0).people


def test_documents_are_stories_of_consecutive_sentences(train):
    for doc in train.documents:
        assert 4 <= len(doc) <= 20
        assert all(s.endswith(" .") and s == s.lower() for s in doc)
        names = [w for w in doc[0].split() if w in train.world.people]
        assert len(names) == 1  # the opening names the person the story is about


def test_facts_are_consistent(train):
    world = train.world
    for doc in train.documents:
        for s in doc:
            w = s.split()
            if len(w) == 5 and w[1] == "lives" and w[2] == "in":
                assert world.people[w[0]].city == w[3]
            if len(w) == 7 and w[1:3] == ["is", "a"] and w[3:5] == ["city", "in"]:
                assert CITY_COUNTRY[w[0]] == w[5]
            if len(w) == 4 and w[0] == "the" and w[1] in ANIMALS and w[2].endswith("s"):
                assert ANIMALS[w[1]][1] == w[2]  # "the cat meows": singular noun, singular verb
    # the syllabus' example pattern is in the corpus
    assert any("the rain falls heavily" in s for s in train.sentences())


def test_heldout_split_uses_reserved_phrasings_that_training_never_does(train):
    heldout = make_corpus(1500, "heldout")
    world = train.world
    train_sentences = set(train.sentences())
    reserved = {sentence for sentence, _ in world.unseen_combinations()}
    assert len(reserved) == len(world.people) + len(FRUIT)
    assert not reserved & train_sentences
    assert reserved & set(heldout.sentences())
    for sentence, answer in world.unseen_combinations():
        assert answer in sentence.split()
    # the held-out split has sentences of its own, but no new words
    assert set(heldout.sentences()) - train_sentences
    assert vocabulary([heldout]) <= vocabulary([train])
    assert len(LIVES_TEMPLATES) == len(COLOUR_TEMPLATES) == 3


def test_shipped_vocabulary_has_specials_first_and_covers_the_corpus(train, tokenizer):
    assert tokenizer.convert_ids_to_tokens(range(5)) == list(SPECIAL_TOKENS)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id) == (0, 1, 2, 3, 4)
    for word in vocabulary([train]):
        assert tokenizer.tokenize(word) == [word], f"{word!r} should be one token"


def test_wordpiece_splits_unseen_words_and_marks_unknown_characters(tokenizer):
    pieces = tokenizer.tokenize("unbelievably")
    assert len(pieces) > 1 and not pieces[0].startswith("##")
    assert all(p.startswith("##") for p in pieces[1:])
    assert "".join(p.removeprefix("##") for p in pieces) == "unbelievably"
    japanese = tokenizer.tokenize("雨 が 激しく 降る")  # kanji are split off one by one, all unknown
    assert japanese and set(japanese) == {"[UNK]"}
    assert tokenizer.tokenize("the rain falls [MASK] .") == ["the", "rain", "falls", "[MASK]", "."]


def test_pair_encoding_matches_the_hugging_face_post_processor(tokenizer):
    ours = tokenizer.encode_pair("anna lives in paris .", "she is a doctor .")
    theirs = tokenizer.hf.encode("anna lives in paris .", "she is a doctor .")
    assert ours.ids == theirs.ids and ours.segment_ids == theirs.type_ids
    assert ours.tokens[0] == "[CLS]" and ours.tokens.count("[SEP]") == 2
    assert tokenizer.decode(ours.ids) == "anna lives in paris. she is a doctor."


def test_training_a_wordpiece_vocabulary(train):
    small = train_wordpiece(train.sentences(), vocab_size=150)
    assert small.vocab_size == 150
    assert small.convert_ids_to_tokens(range(5)) == list(SPECIAL_TOKENS)
    # with so few entries, frequent words stay whole and rarer ones are cut into ## pieces
    assert small.tokenize("the") == ["the"]
    assert any(len(small.tokenize(w)) > 1 for w in vocabulary([train]))


def test_topic_task_splits_words_between_train_and_unseen_test():
    from course_lib.data.corpus import TOPICS, topic_task

    task = topic_task(200, 300)
    assert len(task.train) == 200 and len(task.test_unseen) == len(task.test_seen) == 300
    train_words = {w for ws in task.train_words.values() for w in ws}
    unseen_words = {w for ws in task.unseen_words.values() for w in ws}
    assert not train_words & unseen_words
    for sentence, label in task.test_unseen:
        words = set(sentence.split())
        assert not words & train_words and words & set(task.unseen_words[TOPICS[label]])
    for sentence, label in task.train:
        assert set(sentence.split()) & set(task.train_words[TOPICS[label]])
    assert {label for _, label in task.train} == {0, 1, 2}
    assert topic_task(200, 300).train == task.train  # deterministic
