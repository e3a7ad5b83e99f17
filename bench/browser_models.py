"""The chapters' models in the browser: keystroke-to-result latency and on-demand bytes, in Chromium.

    python bench/browser_models.py [--html _build/html] [--repeats 2]

Serves the built book (default ``_build/html``, or $COURSE_BOOK_HTML) on 127.0.0.1 and drives
headless Chromium (tests/browser.py finds it) with Playwright:

* chapter 1: types dates one key at a time; for each keystroke the page records the time from
  the ``input`` event to the redrawn heatmap (DOM updated; and to the next animation frame).
  Target: under 50 ms.
* chapter 8: one fill-mask prediction per edit (tokenise, run BERT, top-5 tables, heatmap).

Reference in the same run: PyTorch in this process doing the same work on the same weights
(greedy_decode / fill_mask, rebuilt from the exported model.pt), so the table prints the
browser's time as a ratio of it. Also prints the bytes each demo fetches on demand (runtime,
WebAssembly, model), raw and gzip-compressed as GitHub Pages serves them.
"""

from __future__ import annotations

import argparse
import gzip
import os
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from course_lib.book import demos as bd  # noqa: E402

DATES = ["Tuesday, September 27, 1994", "4th of july 1976", "12.3.45", "Jan 1 2001"]
SENTENCES = [
    "the rain falls [MASK] .", "the [MASK] barks .", "paris is a city in [MASK] .", "after monday comes [MASK] .",
    "tom has a red kite . he gives the kite to mia . now mia has the red [MASK] .", "two plus three is [MASK] .",
]


def _wait(page, demo_id, text):
    page.wait_for_function("([id, t]) => document.getElementById(id).dataset.renderedFor === t", arg=[demo_id, text])
    page.wait_for_function("([id]) => document.getElementById(id).dataset.frameLatency !== undefined", arg=[demo_id])
    return page.evaluate(
        "([id]) => { const d = document.getElementById(id).dataset; return [+d.latency, +d.frameLatency]; }", [demo_id]
    )


def _load(page, demo_id):
    page.locator(f"#{demo_id} .course-demo-input").focus()
    page.wait_for_function("([id]) => document.getElementById(id).dataset.loaded === '1'", arg=[demo_id], timeout=120_000)
    return page.evaluate("([id]) => document.getElementById(id).courseDemo.loadMs", [demo_id])


def _bytes(responses):
    rows = []
    for url, body in responses:
        rows.append((url.rsplit("/_static/", 1)[-1], len(body), len(gzip.compress(body, compresslevel=6))))
    return rows


def _torch_ms(calls) -> float:
    """Median milliseconds per call, after two warm-up passes (PyTorch's first calls are slow)."""
    for _ in range(2):
        for call in calls:
            call()
    times = []
    for call in calls:
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def bench_dates(context, site, models, repeats):
    page = context.new_page()
    responses = []
    page.goto(site + "chapters/01_seq2seq_attention.html", wait_until="networkidle")
    page.on("response", lambda r: any(p in r.url for p in ("onnxruntime-web/", "course-models/")) and responses.append((r.url, r.body())))
    load_ms = _load(page, "course-demo-dates")
    box = page.locator("#course-demo-dates .course-demo-input")
    dom, frame, texts = [], [], []
    for _ in range(repeats):
        for date in DATES:
            box.fill("")
            _wait(page, "course-demo-dates", "")
            page.evaluate("() => { delete document.getElementById('course-demo-dates').dataset.frameLatency; }")
            typed = ""
            for ch in date:
                page.evaluate("() => { delete document.getElementById('course-demo-dates').dataset.frameLatency; }")
                box.press(ch if ch != " " else "Space")
                typed += ch
                d, f = _wait(page, "course-demo-dates", typed)
                dom.append(d)
                frame.append(f)
                texts.append(typed)
    page.close()
    model = bd.load_date_translator(models / "dates")
    from course_lib.data.dates import CharVocab, SOURCE_CHARS

    vocab = CharVocab(SOURCE_CHARS)
    import json

    max_steps = json.loads((models / "dates" / "meta.json").read_text())["max_steps"]
    torch_ms = _torch_ms([lambda t=t: model.greedy_decode(torch.tensor([vocab.encode(t.strip())]), max_len=max_steps) for t in texts])
    return load_ms, dom, frame, torch_ms, _bytes(responses)


def bench_fill_mask(context, site, models, repeats):
    page = context.new_page()
    responses = []
    page.goto(site + "chapters/08_bert.html", wait_until="networkidle")
    page.on("response", lambda r: any(p in r.url for p in ("onnxruntime-web/", "course-models/")) and responses.append((r.url, r.body())))
    load_ms = _load(page, "course-demo-fill-mask")
    box = page.locator("#course-demo-fill-mask .course-demo-input")
    dom, frame = [], []
    for _ in range(repeats):
        for s in SENTENCES:
            for text in (s, s + " "):  # two edits per sentence (the second: one more keystroke)
                page.evaluate("() => { delete document.getElementById('course-demo-fill-mask').dataset.frameLatency; }")
                box.fill(text)
                d, f = _wait(page, "course-demo-fill-mask", text)
                dom.append(d)
                frame.append(f)
    page.close()
    from course_lib.bert import fill_mask
    from course_lib.tokenization import load_tokenizer

    model, tokenizer = bd.load_fill_mask(models / "fill_mask"), load_tokenizer(models / "fill_mask" / "vocab.txt")
    def predict(s):
        with torch.no_grad():  # what the page computes: top-5 of every [MASK] and every attention weight
            fill_mask(model, tokenizer, s, k=5)
            model(torch.tensor([tokenizer.encode_pair(s).ids]), need_weights=True)

    torch_ms = _torch_ms([lambda s=s: predict(s) for s in SENTENCES])
    return load_ms, dom, frame, torch_ms, _bytes(responses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", default=os.environ.get("COURSE_BOOK_HTML", str(ROOT / "_build" / "html")))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    html = pathlib.Path(args.html).resolve()
    models = html.parent / ".course-models"
    from browser import CHROMIUM_ARGS, find_browser, serve
    from playwright.sync_api import sync_playwright

    site, server = serve(html)
    torch.set_num_threads(1)  # like the page (one WebAssembly thread)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=find_browser(), headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context()
            results = {
                "ch01 date translator (per keystroke)": bench_dates(context, site, models, args.repeats),
                "ch08 fill-mask (per edit)": bench_fill_mask(context, site, models, args.repeats),
            }
            version = browser.version
            browser.close()
    finally:
        server.shutdown()
    print(f"\nChromium {version}, headless, 1 WebAssembly thread; PyTorch {torch.__version__} on 1 thread in this process")
    print(f"{'demo':<38}{'n':>4}{'median ms':>11}{'p90 ms':>9}{'to frame':>10}{'PyTorch ms':>12}{'ratio':>7}{'first load ms':>15}")
    for name, (load_ms, dom, frame, torch_ms, _) in results.items():
        p90 = sorted(dom)[int(0.9 * (len(dom) - 1))]
        med = statistics.median(dom)
        print(f"{name:<38}{len(dom):>4}{med:>11.1f}{p90:>9.1f}{statistics.median(frame):>10.1f}{torch_ms:>12.2f}"
              f"{med / torch_ms:>7.1f}{load_ms:>15.0f}")
    dates_median = statistics.median(results["ch01 date translator (per keystroke)"][1])
    print(f"ch01 target: keystroke to updated heatmap under 50 ms: median {dates_median:.1f} ms "
          f"({'met' if dates_median < 50 else 'NOT met'}; {dates_median / 50:.2f} x the target)")
    print("\non-demand bytes (fetched after the reader starts the demo; none before)")
    print(f"{'demo':<38}{'file':<58}{'bytes':>11}{'gzip':>11}")
    for name, (*_, rows) in results.items():
        for path, raw, gz in rows:
            print(f"{name:<38}{path:<58}{raw:>11,}{gz:>11,}")
        print(f"{name:<38}{'total':<58}{sum(r[1] for r in rows):>11,}{sum(r[2] for r in rows):>11,}")


if __name__ == "__main__":
    main()
