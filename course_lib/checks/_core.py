"""The machinery behind every ``check_<exercise>`` function.

A check is three steps, kept apart so that a grader can redo the last one in a
clean process, out of reach of anything a submission does to its own kernel:

    inputs  = check.make_inputs()             # fixed seed, deliberately uneven sizes
    outputs = check.run(student, inputs)      # calls the learner's code, collects tensors
    check.verify(inputs, outputs)             # compares with the reference; raises CheckFailed

In a learner's notebook the three run back to back and a success line is
printed. Under the grader, ``outputs`` are also handed to the output hook
(:func:`set_output_hook`), which the grader's recorder (``course_lib.grading.recorder``)
installs to save them to disk; a check knows nothing else of a grader. The grader reloads them
with ``torch.load(weights_only=True)`` in a fresh interpreter and calls
``verify`` again. Monkeypatching ``torch.allclose``, the reference, or the check
function inside the kernel therefore cannot change the verdict.

When ``verify`` fails, the mutation engine (``_mutants``, issue 26) looks for the small change of the
reference that reproduces the learner's outputs and leads the hint with it; a check declares its reference
as steps (a ``steps`` Program, or ``mutation_cases``). ``make_inputs(seed=s)`` gives fresh inputs for the
grader's hidden runs (issue 22); ``make_inputs()`` the fixed ones learners see.

Writing a check: subclass ``Check``, set ``name`` (unique, e.g. "ch3.sdpa"),
implement the three methods using only tensors, numbers, strings, lists and
dicts in ``outputs``, then expose ``check_x = SomeCheck().as_function()``.
Order the assertions in ``verify``: shapes, behaviour, values, gradients.
"""

from __future__ import annotations

import contextvars
import math
import os
import time
import traceback
from typing import Any, Callable, Sequence

import torch

from course_lib.checks import _notebook

__all__ = [
    "CheckFailed", "Check", "REGISTRY", "get_check", "student_call", "fmt_shape",
    "expect_tuple", "expect_tensor", "expect_shape", "expect_close", "is_close", "describe_difference", "first_match",
    "expect_not_swapped", "diagnose_mask", "fit_scale", "normalised_axis", "as_number", "is_finite_number",
    "leaf_copies", "backward_grads", "expect_grads", "seeded", "randn",
]  # fmt: skip

REGISTRY: dict[str, "Check"] = {}


#: set to 1 to see the full traceback of a failed check in Jupyter (for course authors)
TRACEBACK_ENV_VAR = "COURSE_CHECK_TRACEBACK"
_CHECKS_DIR = os.path.dirname(os.path.abspath(__file__))



#: Called as ``hook(check_name, outputs)`` after each check has run the learner's code and
#: before it verifies; None (the default) records nothing. The grader's recorder installs it.
_output_hook: Callable[[str, dict[str, Any]], None] | None = None


def set_output_hook(hook: Callable[[str, dict[str, Any]], None] | None) -> None:
    """Install (or, with None, remove) the function every check hands its outputs to."""
    global _output_hook
    _output_hook = hook


class CheckFailed(AssertionError):
    """A learner-facing failure: says what was expected, what came, and a hint.

    In Jupyter, IPython shows ``_render_traceback_`` instead of the traceback: the
    message and hint, plus the learner's own frames when their code raised, not the
    frames of this machinery. ``COURSE_CHECK_TRACEBACK=1`` restores the full traceback.
    The exception's type and message (what the grader records) are the same either way.
    """

    @property
    def _render_traceback_(self):
        if os.environ.get(TRACEBACK_ENV_VAR, "") not in ("", "0"):
            raise AttributeError("_render_traceback_")  # hasattr() is False: IPython prints the full traceback
        return self._short_traceback

    def _short_traceback(self) -> list[str]:
        lines = []
        cause = self.__cause__
        if cause is not None and not isinstance(cause, CheckFailed) and cause.__traceback__ is not None:
            frames = [f for f in traceback.extract_tb(cause.__traceback__) if not _is_machinery(f.filename)]
            if frames:
                lines.append("Your code raised an error here:")
                lines.extend(line.rstrip("\n") for line in traceback.format_list(frames[-4:]))
                lines.append(f"{type(cause).__name__}: {cause}")
                lines.append("")
        lines.append(f"\x1b[0;31mCheckFailed\x1b[0m: {self}")  # (no author hint here: TRACEBACK_ENV_VAR is in the docs)
        return lines


def _is_machinery(filename: str) -> bool:
    """Frames a learner does not need to read: this package and installed libraries (torch)."""
    path = os.path.abspath(filename)
    return path.startswith(_CHECKS_DIR) or "site-packages" in path or "dist-packages" in path


class Check:
    name: str = ""
    #: one line printed on success
    success: str = "correct"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in REGISTRY and type(REGISTRY[cls.name]) is not cls:
                raise RuntimeError(f"two checks are named {cls.name!r}")
            REGISTRY[cls.name] = cls()
        if "make_inputs" in cls.__dict__ and not getattr(cls.__dict__["make_inputs"], "_seeded", False):
            cls.make_inputs = _seedable(cls.__dict__["make_inputs"])
        if "verify" in cls.__dict__ and not getattr(cls.__dict__["verify"], "_diagnosed", False):
            cls.verify = _diagnosed(cls.__dict__["verify"])

    def make_inputs(self, seed: int | None = None) -> dict[str, Any]:
        """The check's inputs. ``seed=None``: the fixed inputs learners see (and the visible checks use).
        An int: fresh inputs of the same family drawn from that seed (the grader's hidden runs, issue 22),
        so that a table of precomputed outputs cannot pass. Subclasses write ``make_inputs(self)`` with
        :func:`randn` / :func:`seeded`; ``__init_subclass__`` wraps it so that, under a seed, every seed
        they use is mixed with it, then :meth:`vary_inputs` redraws what is not random (sizes, lengths)."""
        raise NotImplementedError

    def mutation_cases(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> list:
        """The reference computation as steps, for diagnosis by mutation (``_mutants``): a list of
        ``(Program, inputs, {output name: the learner's value})``, one per call the check makes.
        Default: the class's ``steps`` Program on ``inputs``, compared with ``outputs`` by name."""
        program = getattr(self, "steps", None)
        if program is None:
            return []
        return [(program, inputs, {k: outputs.get(k) for k in program.outputs})]

    def vary_inputs(self, inputs: dict[str, Any], g: torch.Generator) -> dict[str, Any]:
        """Under a seed, change the non-random parts of ``inputs`` (drawn from ``g``); default: none."""
        return inputs

    def run(self, student: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def verify(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        raise NotImplementedError

    def __call__(self, student: Any) -> None:
        stale = _notebook.stale_definition_note(student)  # the answer cell's latest run raised: say what is tested
        if stale:
            print(stale)
        inputs = self.make_inputs()
        start = time.perf_counter()
        outputs = self.run(student, inputs)
        elapsed = time.perf_counter() - start
        if _output_hook is not None:
            _output_hook(self.name, outputs)
        self.verify(inputs, outputs)
        print(f"\u2714 {self.name}: {self.success}")
        # ``reference``, where a check sets one: the course's answer, with the learner's signature
        slow = _notebook.slow_note(lambda fn: self.run(fn, inputs), getattr(self, "reference", None), elapsed)
        if slow:
            print(slow)

    def as_function(self) -> Callable[[Any], None]:
        check = self

        def check_function(student: Any) -> None:
            check(student)

        check_function.__name__ = "check_" + self.name.split(".")[-1]
        check_function.__doc__ = (type(self).__doc__ or "") + "\n\nPrints a success line or raises CheckFailed."
        check_function.check_name = self.name  # type: ignore[attr-defined]
        return check_function


def _seedable(make_inputs: Callable) -> Callable:
    """``make_inputs(self)`` -> ``make_inputs(self, seed=None)``: under a seed, ``randn`` and ``seeded`` mix it
    into every seed they are given, and ``vary_inputs`` changes the rest (outermost call only)."""

    def wrapped(self, seed: int | None = None):
        if seed is None or _INPUT_SEED.get() is not None:
            return make_inputs(self)
        token = _INPUT_SEED.set(int(seed))
        try:
            inputs = make_inputs(self)
            return self.vary_inputs(inputs, seeded(-1))
        finally:
            _INPUT_SEED.reset(token)

    wrapped._seeded = True  # type: ignore[attr-defined]
    wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__ = make_inputs.__name__, make_inputs.__doc__, make_inputs  # type: ignore[attr-defined]
    return wrapped


_VERIFYING: contextvars.ContextVar[bool] = contextvars.ContextVar("course_check_verifying", default=False)


def _diagnosed(verify: Callable) -> Callable:
    """``verify`` that, when it fails, asks the mutation engine (``_mutants.diagnose``) which small change of
    the reference reproduces the learner's outputs, and leads the hint with that (outermost call only). The
    verdict never changes, and a right answer runs no mutant."""

    def wrapped(self, inputs, outputs):
        if _VERIFYING.get():
            return verify(self, inputs, outputs)
        token = _VERIFYING.set(True)
        try:
            return verify(self, inputs, outputs)
        except CheckFailed as err:
            hint = _engine_hint(self, inputs, outputs)
            if not hint or hint in str(err):
                raise
            raise CheckFailed(_lead_with(str(err), hint)) from err.__cause__
        finally:
            _VERIFYING.reset(token)

    wrapped._diagnosed = True  # type: ignore[attr-defined]
    wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__ = verify.__name__, verify.__doc__, verify  # type: ignore[attr-defined]
    return wrapped


def _engine_hint(check: "Check", inputs, outputs) -> str | None:
    from course_lib.checks import _mutants

    try:
        cases = check.mutation_cases(inputs, outputs)
        return _mutants.diagnose(cases) if cases else None
    except Exception:  # noqa: BLE001 - a diagnosis never turns a verdict into a crash
        return None


def _lead_with(message: str, hint: str) -> str:
    """The failure's message with the engine's hint first; a hand-written hint stays after it."""
    head, _, own = message.partition("\nHint: ")
    return f"{head}\nHint: {hint}" + (f"\n(also: {own})" if own else "")


def get_check(name: str) -> Check:
    """The registered check called ``name`` (importing the chapter modules first)."""
    import course_lib.checks  # noqa: F401  (registers every check)

    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no check named {name!r}; known: {sorted(REGISTRY)}") from None


# --------------------------------------------------------------------------- helpers for verify()


def fmt_shape(shape) -> str:
    """(3, 5, 7) for torch.Size([3, 5, 7]): shapes as the messages write them."""
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def student_call(fn: Callable, *args, what: str = "your function", **kwargs):
    """Call the learner's code; turn its exception into a readable CheckFailed."""
    if not callable(fn):
        raise CheckFailed(f"expected a function or module to check, got {type(fn).__name__}: {fn!r:.80}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        raise CheckFailed(f"{what} is not implemented yet (it raised NotImplementedError). Write the missing code first.") from err
    except CheckFailed:
        raise
    except Exception as err:  # noqa: BLE001 - any learner error becomes a diagnostic
        shapes = ", ".join(fmt_shape(a.shape) for a in args if isinstance(a, torch.Tensor))
        hint = next((h for fragment, h in _KNOWN_ERRORS.items() if fragment in str(err)), "")
        if isinstance(err, NameError):  # a helper defined in a cell that has not run yet
            hint = _notebook.later_cell_hint(getattr(err, "name", None) or "") or hint
        raise CheckFailed(f"{what} raised {type(err).__name__}: {err}\n(called with tensors of shapes {shapes})"
                          + (f"\nHint: {hint}" if hint else "")) from err


#: fragments of torch's own error messages, and what they usually mean in these exercises
_KNOWN_ERRORS = {
    "view size is not compatible with input tensor's size and stride": (
        "after a transpose the tensor is no longer contiguous, so .view() fails: use .reshape(...) or .contiguous().view(...)"),
    "expected scalar type": "a tensor of another dtype is mixed in: create new tensors with dtype=x.dtype (and device=x.device)",
    "found dtype": "a tensor of another dtype is mixed in: create new tensors with dtype=x.dtype (and device=x.device)",
    "without overflow": "the fill value does not fit the tensor's dtype (e.g. float64's minimum in float32): "
                        "use torch.finfo(scores.dtype).min, the minimum of the scores' own dtype",
}


def expect_tuple(result: Any, n: int, names: str, what: str = "your function") -> tuple | list:
    """The learner's result, when it is a tuple (or list) of ``n`` items named ``names``."""
    if not isinstance(result, (tuple, list)) or len(result) != n:
        got = type(result).__name__ + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
        raise CheckFailed(f"{what} should return a tuple ({names}), got {got}")
    return result


def expect_tensor(x: Any, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise CheckFailed(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    return x


def expect_shape(x: Any, shape: tuple[int, ...], what: str, hint: str = "") -> torch.Tensor:
    x = expect_tensor(x, what)
    if tuple(x.shape) != tuple(shape):
        msg = f"{what}: expected shape {fmt_shape(shape)}, got {fmt_shape(x.shape)}"
        if sorted(x.shape) == sorted(shape):
            msg += " - the same sizes in another order: is a transpose or view on the wrong axes?"
        raise CheckFailed(msg + (f"\nHint: {hint}" if hint else ""))
    return x


def expect_close(got: Any, expected: torch.Tensor, what: str, hint: str = "", atol: float = 1e-5, rtol: float = 1e-4,
                 axes: str | None = None) -> None:
    """``got`` equals ``expected`` within tolerance; otherwise a CheckFailed that says *what* differs
    (``describe_difference``: a constant factor, an order along one axis, which positions) and the hint."""
    got = expect_shape(got, tuple(expected.shape), what)
    got = got.detach().to(expected.dtype)
    if not torch.isfinite(got).all():
        raise CheckFailed(f"{what}: contains NaN or inf" + (f"\nHint: {hint}" if hint else ""))
    # the comparison is written out so that a patched torch.allclose in a kernel cannot change it
    err = (got - expected).abs()
    tol = atol + rtol * expected.abs()
    if bool((err > tol).any()):
        msg = f"{what}: {describe_difference(got, expected, axes=axes, atol=atol, rtol=rtol)}"
        raise CheckFailed(msg + (f"\nHint: {hint}" if hint else ""))


def _axis_names(axes: str | None, ndim: int) -> list[str]:
    names = axes.replace(",", " ").split() if axes else []
    return names if len(names) == ndim else [f"axis {i}" for i in range(ndim)]


def describe_difference(got: torch.Tensor, expected: torch.Tensor, axes: str | None = None,
                        atol: float = 1e-5, rtol: float = 1e-4) -> str:
    """Where ``got`` differs from ``expected`` (same shape), in words, without guessing a cause:
    a constant ratio, a reordering along one axis, the positions (along each axis) that differ,
    and the largest difference. ``axes`` names the dimensions, e.g. "B T S"."""
    got, expected = got.detach().double(), expected.detach().double()
    names = _axis_names(axes, expected.dim())
    if not bool(torch.isfinite(got).all()):
        bad = ~torch.isfinite(got)
        idx = tuple(int(i) for i in bad.nonzero()[0])
        return f"NaN or inf at {int(bad.sum())} of {got.numel()} positions (the first at index {idx})"
    err = (got - expected).abs()
    bad = err > atol + rtol * expected.abs()
    n_bad, n = int(bad.sum()), bad.numel()
    if n_bad == 0:
        return "values agree"
    denom = float((expected * expected).sum())
    if denom > 0 and n > 1:
        c = float((got * expected).sum()) / denom
        if abs(c - 1) > 1e-3 and abs(c) > 1e-12 and bool(((got - c * expected).abs() <= atol + rtol * (c * expected).abs()).all()):
            inv = f" (= 1 / {1 / c:.4g})" if abs(c) < 1 else ""
            return f"every value is the reference's times the same factor {c:.4g}{inv}: right up to a constant scale"
    for axis, size in enumerate(expected.shape):
        if size < 2 or n_bad == 0:
            continue
        g, e = got.movedim(axis, 0).reshape(size, -1), expected.movedim(axis, 0).reshape(size, -1)
        close = ((g[:, None, :] - e[None, :, :]).abs() <= atol + rtol * e[None, :, :].abs()).all(-1)  # (size, size)
        if bool(close.any(1).all()) and not bool(close.diagonal().all()):
            order = [int(close[i].nonzero()[0]) for i in range(size)]
            if len(set(order)) == size:
                return (f"the right values in another order along {names[axis]} (size {size}): your index i holds "
                        f"the reference's index {order}[i]")
    where = []
    for axis, size in enumerate(expected.shape):
        rows = bad.movedim(axis, 0).reshape(size, -1).any(1)
        if size > 1 and not bool(rows.all()):
            idx = rows.nonzero().flatten().tolist()
            shown = ", ".join(map(str, idx[:8])) + (", ..." if len(idx) > 8 else "")
            where.append(f"{names[axis]} in [{shown}] (of {size})")
    worst = int(err.argmax())
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), expected.shape))
    msg = f"{n_bad} of {n} values differ from the reference"
    if where:
        msg += ", only at " + " and ".join(where)
    if n_bad > 1:
        pos = bad & (expected.abs() > 1e-12)
        if bool(pos.any()):
            ratio = got[pos] / expected[pos]
            lo, hi = float(ratio.min()), float(ratio.max())
            msg += f"; your/reference ratio there ranges {lo:.3g} .. {hi:.3g}"
    return msg + (f" (largest difference {float(err.max()):.3g} at index {idx}: expected "
                  f"{float(expected.flatten()[worst]):.6g}, got {float(got.flatten()[worst]):.6g})")


def first_match(got: Any, variants, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """The hint of the first ``(hint, value)`` whose value ``got`` equals; None when none does.
    A value may be a callable (computed only when reached) or None (skipped)."""
    for hint, value in (variants.items() if isinstance(variants, dict) else variants):
        if callable(value):
            value = value()
        if isinstance(value, torch.Tensor) and is_close(got, value, atol=atol, rtol=rtol):
            return hint
    return None


def expect_not_swapped(outputs: dict, first: str, second: str, ref_first: torch.Tensor, ref_second: torch.Tensor,
                       order: str) -> None:
    """Name a pair returned the wrong way round, e.g. (weights, context) for (context, weights)."""
    a, b = outputs.get(first), outputs.get(second)
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return
    if tuple(a.shape) == tuple(b.shape) == tuple(ref_first.shape) == tuple(ref_second.shape):
        swapped = is_close(a, ref_second, atol=1e-4) and is_close(b, ref_first, atol=1e-4) and not is_close(a, ref_first, atol=1e-4)
    else:
        swapped = tuple(a.shape) == tuple(ref_second.shape) and tuple(b.shape) == tuple(ref_first.shape)
    if swapped:
        raise CheckFailed(f"the two results come in the wrong order: your first result looks like {second} and your second like {first}\n"
                          f"Hint: return ({order}), in that order")


def fit_scale(weights: torch.Tensor, scores: torch.Tensor, dim: int = -1) -> float | None:
    """The c with weights == softmax(c * scores) over ``dim``, if there is one (else None): names any
    scale mistake (none, d_k instead of sqrt(d_k), the wrong d_k) by the factor actually used."""
    w, sc = weights.detach().double(), scores.detach().double()
    if tuple(w.shape) != tuple(sc.shape) or not bool(torch.isfinite(w).all()) or bool((w <= 0).any()):
        return None
    lw = w.log() - w.log().mean(dim, keepdim=True)
    cs = sc - sc.mean(dim, keepdim=True)
    denom = float((cs * cs).sum())
    if denom == 0:
        return None
    c = float((lw * cs).sum()) / denom
    return c if is_close(w, (c * sc).softmax(dim), atol=1e-6, rtol=1e-4) else None


def normalised_axis(weights: torch.Tensor) -> int | None:
    """The axis (other than the last) over which ``weights`` sum to 1, if the last one is not it."""
    w = weights.detach().double()
    for axis in range(w.dim() - 1):
        if w.shape[axis] > 1 and is_close(w.sum(axis), torch.ones((), dtype=w.dtype).expand(w.sum(axis).shape), atol=1e-5):
            return axis
    return None


def diagnose_mask(weights: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor | None = None,
                  ref_unmasked: torch.Tensor | None = None) -> str | None:
    """Name a misuse of a boolean mask (True = may attend) by what the weights do, whatever the code:
    weight only on hidden keys (inverted), hidden keys all weighted alike (scores filled with a
    constant such as 0), the mask ignored, masked weights zeroed after the softmax, NaN rows.
    ``weights`` (..., T, S); ``scores`` the right pre-mask scores if known. None if nothing matches."""
    w = weights.detach().double()
    m = mask.expand(w.shape) if mask.dim() <= w.dim() else mask
    if tuple(m.shape) != tuple(w.shape):
        return None
    finite_rows = torch.isfinite(w).all(-1)
    all_visible, none_visible = m.all(-1), ~m.any(-1)
    partial = m.any(-1) & ~all_visible
    if not bool(finite_rows.all()):
        nan_rows = ~finite_rows
        if bool(all_visible.any()) and bool((nan_rows == all_visible).all()):
            return ("the mask polarity is inverted: True means 'may attend', so fill the scores where the mask is False "
                    "(a row whose keys are all allowed became all -inf, hence NaN)")
        if bool(none_visible.any()) and bool((nan_rows == none_visible).all()):
            return ("the NaN rows are exactly the queries that may see no key: softmax of a row of -inf is 0/0. Fill with a "
                    "finite very negative number (torch.finfo(dtype).min) and set the masked weights to 0 after the softmax")
        return None
    if not bool(partial.any()):
        return None
    wp, mp = w[partial], m[partial]  # (rows, S)
    hidden_mass, visible_mass = (wp * ~mp).sum(-1), (wp * mp).sum(-1)
    if bool((visible_mass < 1e-6).all()) and bool((hidden_mass > 1e-3).all()):
        return "the mask polarity is inverted: True means 'may attend', so fill the scores where the mask is False"
    if bool((hidden_mass < 1e-9).all()):
        if bool((visible_mass < 1 - 1e-5).any()) and bool((visible_mass > 1e-9).all()):
            renorm = wp / visible_mass[:, None]
            if ref_unmasked is None or is_close(renorm, ref_unmasked.expand(w.shape)[partial] * mp / (ref_unmasked.expand(w.shape)[partial] * mp).sum(-1, keepdim=True), atol=1e-4):
                return ("you zeroed the masked weights after the softmax, so the allowed ones no longer sum to 1: "
                        "fill the scores of masked keys with -inf (or a very negative number) before the softmax")
        return None
    if ref_unmasked is not None and is_close(w, ref_unmasked.expand(w.shape), atol=1e-5):
        return "the mask is not applied: masked keys get the same weights as without a mask. Fill their scores before the softmax"
    # a constant fill: every hidden key of a row gets the same weight
    hid = wp.masked_fill(mp, float("nan"))
    spread = (hid.nan_to_num(-1.0).amax(-1) - hid.nan_to_num(2.0).amin(-1))
    if bool((spread <= 1e-9 + 1e-6 * hidden_mass).all()) and bool(((~mp).sum(-1) > 0).all()):
        if scores is not None:
            sp = scores.detach().double().expand(w.shape)[partial]
            j = (wp * mp).argmax(-1, keepdim=True)  # a visible key with weight > 0
            fill = sp.gather(-1, j) + (hid.nan_to_num(0.0).amax(-1, keepdim=True) / wp.gather(-1, j)).log()
            c = float(fill.median())
            if abs(c) < 1e-4:
                return ("the masked scores were set to 0 (a fill of 0, or scores * mask): exp(0) still gives those keys "
                        "weight. Fill them with float('-inf') or torch.finfo(dtype).min")
            return (f"the masked scores were set to {c:.3g}, which is not negative enough: those keys still get weight. "
                    "Fill them with float('-inf') or torch.finfo(dtype).min")
        return ("every masked key of a row gets the same non-zero weight: their scores were replaced by a constant that is "
                "not negative enough (e.g. 0). Fill them with float('-inf') or torch.finfo(dtype).min")
    return None


def is_close(got: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when shapes match and values agree; used to diagnose *which* mistake was made."""
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(expected.shape):
        return False
    got = got.detach().to(expected.dtype)
    return bool(((got - expected).abs() <= atol + rtol * expected.abs()).all()) and bool(torch.isfinite(got).all())


def as_number(value: Any) -> Any:
    """A one-element tensor as a Python number (a learner may return either); anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool), neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- gradients: run() collects, verify() compares


def leaf_copies(*xs: torch.Tensor) -> list[torch.Tensor]:
    """Copies of the inputs that start a fresh graph, so a backward pass fills their ``.grad``."""
    return [x.clone().requires_grad_(True) for x in xs]


def backward_grads(result: Any, leaves: Sequence[torch.Tensor], grad_out: torch.Tensor) -> list | None:
    """Backpropagate ``grad_out`` through the learner's ``result``; the leaves' gradients, or None
    when ``result`` has another shape or no graph back to the leaves (``expect_grads`` says why)."""
    if isinstance(result, torch.Tensor) and result.shape == grad_out.shape and result.requires_grad:
        (result * grad_out).sum().backward()
        return [x.grad for x in leaves]
    return None


def expect_grads(got: list | None, refs: Sequence[torch.Tensor], names: Sequence[str], what: str = "your function", hint: str = "") -> None:
    """The gradients ``backward_grads`` collected against the reference's, one input name each."""
    if got is None:
        raise CheckFailed(
            f"gradients do not flow through {what}: its output does not require grad when its inputs do.\n"
            "Hint: use torch operations only (no .detach(), .numpy(), .item() or torch.no_grad())."
        )
    for name, g, ref in zip(names, got, refs):
        if g is None:
            raise CheckFailed(f"no gradient reached {name}: is it used through a detached copy?")
        expect_close(g, ref, f"gradient with respect to {name}", hint=hint)


# --------------------------------------------------------------------------- inputs


#: the grader's seed while ``make_inputs(seed=...)`` runs; None: the fixed inputs
_INPUT_SEED: contextvars.ContextVar[int | None] = contextvars.ContextVar("course_check_input_seed", default=None)


def seeded(seed: int) -> torch.Generator:
    """A generator seeded with ``seed``, or, inside ``make_inputs(seed=s)``, with ``seed`` mixed with ``s``."""
    extra = _INPUT_SEED.get()
    if extra is not None:
        seed = (1_000_003 * (int(seed) + 7) + 998_244_353 * (int(extra) + 1)) % (2**62)
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=seeded(seed), dtype=dtype)


SQRT = math.sqrt
