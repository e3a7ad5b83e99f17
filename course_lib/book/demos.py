"""The chapters' own trained models, live in the reader's browser (ONNX Runtime Web).

In the built book an ipywidgets control is dead: only its first state is embedded.
So, while the book builds (``course_lib.runtime.building_book()``), chapters 1 and 8
export the model they just trained with ``torch.onnx`` and show an HTML/JavaScript
demo that runs it in the page:

* chapter 1, the date translator: ``export_date_translator`` writes the encoder
  (source characters -> every state) and ONE decoder step (previous character,
  state, encoder states -> logits, new state, attention weights); the page loops
  greedy decoding in JavaScript and redraws the alignment heatmap at every keystroke.
* chapter 8, fill-mask: ``export_fill_mask`` writes the pretrained BERT with its
  MLM head (token ids -> probabilities of every vocabulary entry at every position,
  and the attention weights of every layer and head); the page tokenises with
  WordPiece from the same vocabulary.

Where the files go: the book's Sphinx extension (``course_lib.book.sphinxext``) sets
``COURSE_DEMO_MODELS`` to ``<build>/_build/.course-models`` (next to the jupyter
cache, so it survives a cached rebuild) and copies the files the page needs into
``_build/html/_static/course-models/`` when the build finishes. Next to them the
export keeps ``model.pt`` (the config and state_dict), which only the tests read:
they rebuild the model with course_lib and compare PyTorch with the page.

The JavaScript (``course_lib/book/web/demos.js``) is inlined into the cell's output, so
it runs only on those two pages. ONNX Runtime Web (``ort.wasm.min.js`` and its
WebAssembly, served from ``_static/course-assets/onnxruntime-web/``) and the model
load on demand: on the first click in the box or on the "run the model" button.
Being inlined, it is part of the chapter's cached output: after changing demos.js or
demos.css, re-execute chapters 1 and 8 (tests/test_book_models.py checks the pages
carry the repository's copy). Both heatmaps colour attention weights on one fixed
scale, 0 to 1, with a colour bar saying so (the same convention as the chapters'
matplotlib heatmaps with ``vmax=1``).

Input rules shared by the page and the live-kernel widgets (so both say the same
thing about bad input) live in ``course_lib.demo_inputs``; this module re-exports them.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import pathlib
import warnings

import torch
from torch import nn

from course_lib.demo_inputs import (
    EMPTY_DATE,
    NOT_TRAINED_SENTENCE,
    DateInput,
    FillMaskInput,
    date_max_chars,
    fill_mask_input,
    prepare_date_input,
)
from course_lib.ood import date_rules

__all__ = [
    "ENV_MODELS",
    "SITE_FOLDER",
    "DateDecoderStepGraph",
    "DateEncoderGraph",
    "DateInput",
    "FillMaskGraph",
    "FillMaskInput",
    "date_meta",
    "date_translator_demo",
    "export_date_translator",
    "export_fill_mask",
    "fill_mask_demo",
    "fill_mask_input",
    "fill_mask_meta",
    "load_date_translator",
    "load_fill_mask",
    "models_dir",
    "prepare_date_input",
]

#: Environment variable (set by course_lib.book.sphinxext) naming the folder the chapters export into.
ENV_MODELS = "COURSE_DEMO_MODELS"
#: Folder under the site's _static/ that holds the exported models.
SITE_FOLDER = "course-models"
#: Files of an exported model the page loads (the rest, e.g. model.pt, stays out of the site).
SITE_SUFFIXES = (".onnx", ".json")
WEB = pathlib.Path(__file__).resolve().parent / "web"
OPSET = 17

# Python's str.strip() removes exactly these characters (str.isspace); JavaScript's trim() differs
# (it also removes U+FEFF and keeps U+001C-U+001F), so the page strips this same set.
PY_WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())


def models_dir(create: bool = True) -> pathlib.Path:
    """The folder the chapters export into: $COURSE_DEMO_MODELS, else ./_demo_models (a live kernel)."""
    path = pathlib.Path(os.environ.get(ENV_MODELS) or "_demo_models")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- the exported graphs


class DateEncoderGraph(nn.Module):
    """The trained encoder for one unpadded source: src (1, S) -> hs (1, S, C), h_last (1, C)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, src: torch.Tensor):
        hs, _ = self.encoder.rnn(self.encoder.embed(src))  # (1, S) -> (1, S, E) -> (1, S, C)
        return hs, hs[:, -1]  # no padding: the last state is the last real one


class DateDecoderStepGraph(nn.Module):
    """One step of the trained AttentionDecoder.

    token (1, 1), state (1, 1, C), hs (1, S, C) -> logits (1, V), new state (1, 1, C), weights (1, S)
    """

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, token: torch.Tensor, state: torch.Tensor, hs: torch.Tensor):
        from course_lib.seq2seq import EncoderOutput

        mask = torch.ones(hs.shape[:2], dtype=torch.bool)  # (1, S): one source, no padding
        out = self.decoder(token, EncoderOutput(hs, hs[:, -1], mask), state)
        return out.logits[:, 0], out.state, out.weights[:, 0]


class FillMaskGraph(nn.Module):
    """The pretrained BERT + MLM head: input_ids (1, T) -> probs (1, T, V), attentions (1, L, H, T, T)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor):
        out = self.model(input_ids, need_weights=True)
        logits = out.mlm_logits if hasattr(out, "mlm_logits") else out.logits  # (1, T, V)
        return logits.softmax(dim=-1), torch.stack(out.attentions, dim=1)


def _export(graph: nn.Module, args: tuple, path: pathlib.Path, inputs: list[str], outputs: list[str], dynamic: dict) -> None:
    was_training = [m.training for m in graph.modules()]
    graph.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # the TorchScript exporter: its ONNX GRU op keeps the encoder's loop over S dynamic
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, args, str(path), input_names=inputs, output_names=outputs,
                              dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)  # fmt: skip
    finally:
        for m, mode in zip(graph.modules(), was_training):
            m.training = mode


def _save_model(path: pathlib.Path, kind: str, config, model: nn.Module) -> None:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"kind": kind, "config": dataclasses.asdict(config), "state_dict": state}, path)


def date_meta(task) -> dict:
    """What the page needs besides the graphs: vocabularies, limits, and the rules that say when an input is
    unlike the training data (course_lib.ood.date_rules: the formats' templates, names and years)."""
    return {
        "src_itos": task.src_vocab.itos,
        "tgt_itos": task.tgt_vocab.itos,
        "pad_id": task.tgt_vocab.pad_id, "bos_id": task.tgt_vocab.bos_id,
        "eos_id": task.tgt_vocab.eos_id, "unk_id": task.src_vocab.unk_id,
        "max_chars": date_max_chars(task),
        "max_steps": task.max_tgt_len,
        "whitespace": PY_WHITESPACE,
        "rules": {**date_rules(), "empty": EMPTY_DATE},
    }  # fmt: skip


def fill_mask_meta(tokenizer, config, vocab: list[str], k: int = 5) -> dict:
    """What the page needs besides the graph: the vocabulary, the special ids, limits and the WordPiece settings."""
    from course_lib.tokenization import SPECIAL_TOKENS

    return {
        "vocab": vocab,
        "special_tokens": list(SPECIAL_TOKENS),
        "pad_id": tokenizer.pad_id, "unk_id": tokenizer.unk_id, "cls_id": tokenizer.cls_id,
        "sep_id": tokenizer.sep_id, "mask_id": tokenizer.mask_id,
        "max_len": config.max_len, "n_layers": config.n_layers, "n_heads": config.n_heads, "k": k,
        "max_input_chars_per_word": tokenizer.hf._tokenizer.model.max_input_chars_per_word,
        "continuing_prefix": tokenizer.hf._tokenizer.model.continuing_subword_prefix,
        "not_trained": NOT_TRAINED_SENTENCE,
    }  # fmt: skip


def export_date_translator(model: nn.Module, task, folder: str | pathlib.Path | None = None) -> pathlib.Path:
    """Write encoder.onnx, decoder_step.onnx, meta.json (vocabularies, limits) and model.pt; return the folder."""
    if getattr(model.config, "attention", None) != "dot":
        raise ValueError(f"the demo exports a Seq2Seq with dot attention, got attention={model.config.attention!r}")
    folder = pathlib.Path(folder) if folder is not None else models_dir() / "dates"
    folder.mkdir(parents=True, exist_ok=True)
    src = torch.tensor([task.src_vocab.encode("4 jul 1976")])  # (1, S): an example; S is dynamic
    enc = DateEncoderGraph(model.encoder)
    with torch.no_grad():
        hs, h_last = enc.eval()(src)
    _export(enc, (src,), folder / "encoder.onnx", ["src"], ["hs", "h_last"], {"src": {1: "S"}, "hs": {1: "S"}})
    token = torch.full((1, 1), model.config.bos_id, dtype=torch.long)
    _export(DateDecoderStepGraph(model.decoder), (token, h_last.unsqueeze(0), hs), folder / "decoder_step.onnx",
            ["token", "state", "hs"], ["logits", "new_state", "weights"], {"hs": {1: "S"}, "weights": {1: "S"}})  # fmt: skip
    meta = date_meta(task)
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    _save_model(folder / "model.pt", "seq2seq", model.config, model)
    return folder



def export_fill_mask(model: nn.Module, tokenizer, folder: str | pathlib.Path | None = None, k: int = 5) -> pathlib.Path:
    """Write bert_mlm.onnx, meta.json (vocabulary, limits), vocab.txt and model.pt; return the folder."""
    from course_lib.tokenization import save_vocab

    folder = pathlib.Path(folder) if folder is not None else models_dir() / "fill_mask"
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config
    ids = torch.tensor([tokenizer.encode_pair("the rain falls [MASK] .").ids])  # (1, T); T is dynamic
    _export(FillMaskGraph(model), (ids,), folder / "bert_mlm.onnx", ["input_ids"], ["probs", "attentions"],
            {"input_ids": {1: "T"}, "probs": {1: "T"}, "attentions": {3: "T", 4: "T"}})  # fmt: skip
    save_vocab(tokenizer, folder / "vocab.txt")
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    meta = fill_mask_meta(tokenizer, config, vocab, k)
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    _save_model(folder / "model.pt", "bert_pretraining", config, model)
    return folder


def load_date_translator(folder: str | pathlib.Path):
    """The exported Seq2Seq rebuilt with course_lib from model.pt (eval mode)."""
    from course_lib.seq2seq import Seq2Seq, Seq2SeqConfig

    saved = torch.load(pathlib.Path(folder) / "model.pt", weights_only=True)
    model = Seq2Seq(Seq2SeqConfig(**saved["config"]))
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def load_fill_mask(folder: str | pathlib.Path):
    """The exported BertForPreTraining rebuilt with course_lib from model.pt (eval mode)."""
    from course_lib.bert import BertConfig, BertForPreTraining

    saved = torch.load(pathlib.Path(folder) / "model.pt", weights_only=True)
    model = BertForPreTraining(BertConfig(**saved["config"]))
    model.load_state_dict(saved["state_dict"])
    return model.eval()


# --------------------------------------------------------------------------- the page's HTML


def _script() -> str:
    return (WEB / "demos.js").read_text(encoding="utf-8")


def _style() -> str:
    return (WEB / "demos.css").read_text(encoding="utf-8")


#: What the page fetches of ONNX Runtime Web on first use (course_lib.book.assets stages them; the .wasm gzip-compressed).
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm.gz")


def download_bytes(folder: pathlib.Path) -> int:
    """Bytes the demo fetches on first use (the runtime as staged for this build, and the model's .onnx files);
    0 when the staged runtime is not found (outside a book build): the page then names no size."""
    from course_lib.book.assets import ENV_NODE_MODULES, STATIC_DIR

    node_modules = os.environ.get(ENV_NODE_MODULES)
    runtime = pathlib.Path(node_modules or ".") / ".course-book-static" / STATIC_DIR / "onnxruntime-web"  # sphinxext.STAGING
    files = [runtime / name for name in RUNTIME_FILES]
    if not node_modules or not all(f.is_file() for f in files):
        return 0
    return sum(f.stat().st_size for f in files) + sum(f.stat().st_size for f in folder.glob("*.onnx"))


def _demo_html(kind: str, model_folder: str, settings: dict, body: str) -> str:
    demo_id = f"course-demo-{kind}"
    config = json.dumps({"model": f"_static/{SITE_FOLDER}/{model_folder}/", **settings})
    return (
        f"<style>{_style()}</style>\n"
        f'<div class="course-demo" id="{demo_id}" data-demo="{kind}">\n{body}\n'
        '<div class="course-demo-status" role="status" aria-live="polite"></div>\n'
        '<div class="course-demo-output"></div>\n</div>\n'
        f"<script>\n{_script()}\n</script>\n"
        f"<script>window.CourseDemos.start(document.getElementById({json.dumps(demo_id)}), {config});</script>\n"
    )


def date_translator_demo(model: nn.Module, task, default: str = "Sun, 4 Jul 1976"):
    """Export the trained translator and return the in-page demo (an IPython HTML object)."""
    from IPython.display import HTML

    folder = export_date_translator(model, task)
    body = (
        '<label>date: <input type="text" class="course-demo-input" size="40" spellcheck="false" '
        f'value="{html.escape(default)}"></label>\n'
        '<button type="button" class="course-demo-run">run the model</button>'
    )
    return HTML(_demo_html("dates", "dates", {"download_bytes": download_bytes(folder)}, body))


def fill_mask_demo(model: nn.Module, tokenizer, default: str, k: int = 5):
    """Export the pretrained BERT and return the in-page fill-mask demo (an IPython HTML object)."""
    from IPython.display import HTML

    folder = export_fill_mask(model, tokenizer, k=k)
    layers = "".join(f'<option value="{i}">{i}</option>' for i in range(model.config.n_layers))
    heads = "".join(f'<option value="{i}">{i}</option>' for i in range(model.config.n_heads))
    body = (
        '<label>sentence: <input type="text" class="course-demo-input" size="60" spellcheck="false" '
        f'value="{html.escape(default)}"></label>\n'
        '<button type="button" class="course-demo-run">run the model</button><br>\n'
        f'<label>attention of layer <select class="course-demo-layer">{layers}</select></label>\n'
        f'<label>head <select class="course-demo-head">{heads}</select></label> '
        "(layers and heads numbered from 0)"
    )
    return HTML(_demo_html("fill-mask", "fill_mask", {"download_bytes": download_bytes(folder)}, body))

