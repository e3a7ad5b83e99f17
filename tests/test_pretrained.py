"""course_lib.pretrained: the real all-MiniLM-L6-v2 weights in the course's BertModel.

Hidden states equal transformers.BertModel's, and the mean-pooled, normalised vectors equal
SentenceTransformer.encode's, within 1e-5, on real sentences of the book's prose; a corrupted
copy of either file is refused with a message naming the file and both hashes.
"""

import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.bert import hf_key_map  # noqa: E402
from course_lib.pretrained import (  # noqa: E402
    EXPECTED_SHA256,
    HashMismatch,
    batch_encode,
    encode,
    load_minilm,
    minilm_tokenizer,
    model_dir,
    real_weights_parity,
    sha256,
)
from course_lib.search import book_paragraphs, book_sentences  # noqa: E402

N_SENTENCES = 64


@pytest.fixture(scope="module")
def sentences():
    found = book_sentences(book_paragraphs())
    assert len(found) >= N_SENTENCES
    return found[:: len(found) // N_SENTENCES][:N_SENTENCES]  # spread over every chapter and guide


@pytest.fixture(scope="module")
def ours():
    return load_minilm(), minilm_tokenizer()


def test_installed_files_have_the_official_hashes():
    for name, expected in EXPECTED_SHA256.items():
        assert sha256(model_dir() / name) == expected, name


def test_hidden_states_equal_transformers(ours, sentences):
    import transformers

    model, tokenizer = ours
    theirs = transformers.BertModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()
    ids, mask = batch_encode(tokenizer, sentences)
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
        hf = theirs(input_ids=ids, attention_mask=mask)
    real = mask.bool()
    assert len(sentences) >= 50 and ids.shape[1] > 20
    torch.testing.assert_close(out.hidden[real], hf.last_hidden_state[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.pooled, hf.pooler_output, atol=1e-5, rtol=0)


def test_sentence_vectors_equal_sentence_transformers(ours, sentences):
    from sentence_transformers import SentenceTransformer

    model, tokenizer = ours
    reference = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
    theirs = reference.encode(sentences, convert_to_tensor=True, batch_size=16)
    mine = encode(model, tokenizer, sentences, batch_size=16)
    torch.testing.assert_close(mine, theirs.cpu(), atol=1e-5, rtol=0)
    assert torch.allclose(mine.norm(dim=-1), torch.ones(len(sentences)), atol=1e-5)


def test_long_text_is_cut_like_sentence_transformers(ours):
    from sentence_transformers import SentenceTransformer

    model, tokenizer = ours
    long_text = " ".join(p.text for p in book_paragraphs()[:6])  # well over 256 tokens
    assert len(tokenizer.encode(long_text)) > 300
    reference = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
    theirs = reference.encode([long_text], convert_to_tensor=True)
    torch.testing.assert_close(encode(model, tokenizer, [long_text]), theirs.cpu(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["model.safetensors", "vocab.txt"])
def test_a_corrupted_copy_is_refused(tmp_path, name):
    copy = tmp_path / "model"
    shutil.copytree(model_dir(), copy)
    target = copy / name
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    target.write_bytes(bytes(data))
    with pytest.raises(HashMismatch) as refused:
        load_minilm(copy)
    message = str(refused.value)
    assert name in message and EXPECTED_SHA256[name] in message and sha256(target) in message


def test_the_reference_key_map_passes_the_exercise_helper():
    assert real_weights_parity(hf_key_map) < 1e-5


def test_the_exercise_helper_catches_a_swapped_map():
    def swapped(n_layers):
        keys = hf_key_map(n_layers)
        q, k = "bert.encoder.layers.2.self_attn.q_proj.weight", "bert.encoder.layers.2.self_attn.k_proj.weight"
        keys[q], keys[k] = keys[k], keys[q]
        return keys

    with pytest.raises(AssertionError, match="swapped"):
        real_weights_parity(swapped)


def test_the_exercise_helper_names_an_unknown_key():
    def renamed(n_layers):
        keys = hf_key_map(n_layers)
        keys["bert.embeddings.segment_embeddings.weight"] = "bert.embeddings.segment_embeddings.weight"
        return keys

    with pytest.raises(KeyError, match="segment_embeddings"):
        real_weights_parity(renamed)
