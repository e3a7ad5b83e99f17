"""The machinery behind every ``check_<exercise>`` function.

A check is three steps, kept apart so that a grader can redo the last one in a
clean process, out of reach of anything a submission does to its own kernel:

    inputs  = check.make_inputs()             # fixed seed, deliberately uneven sizes
    outputs = check.run(student, inputs)      # calls the learner's code, collects tensors
    check.verify(inputs, outputs)             # compares with the reference; raises CheckFailed

In a learner's notebook the three run back to back and a success line is
printed. Under the grader (``COURSE_GRADING_DIR`` set), ``outputs`` are also
saved to disk (``course_lib.grading.recorder``); the grader then reloads them
with ``torch.load(weights_only=True)`` in a fresh interpreter and calls
``verify`` again. Monkeypatching ``torch.allclose``, the reference, or the check
function inside the kernel therefore cannot change the verdict.

Writing a check: subclass ``Check``, set ``name`` (unique, e.g. "ch3.sdpa"),
implement the three methods using only tensors, numbers, strings, lists and
dicts in ``outputs``, then expose ``check_x = SomeCheck().as_function()``.
Order the assertions in ``verify``: shapes, behaviour, values, gradients.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

__all__ = [
    "CheckFailed", "Check", "REGISTRY", "get_check", "student_call", "fmt_shape",
    "expect_tuple", "expect_tensor", "expect_shape", "expect_close", "is_close", "as_number", "is_finite_number",
    "leaf_copies", "backward_grads", "expect_grads", "seeded", "randn",
]  # fmt: skip

REGISTRY: dict[str, "Check"] = {}


class CheckFailed(AssertionError):
    """A learner-facing failure: says what was expected, what came, and a hint."""


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

    def make_inputs(self) -> dict[str, Any]:
        raise NotImplementedError

    def run(self, student: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def verify(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        raise NotImplementedError

    def __call__(self, student: Any) -> None:
        from course_lib.grading import recorder  # local import: keeps checks importable alone

        inputs = self.make_inputs()
        outputs = self.run(student, inputs)
        recorder.record(self.name, outputs)
        self.verify(inputs, outputs)
        print(f"\u2714 {self.name}: {self.success}")

    def as_function(self) -> Callable[[Any], None]:
        check = self

        def check_function(student: Any) -> None:
            check(student)

        check_function.__name__ = "check_" + self.name.split(".")[-1]
        check_function.__doc__ = (type(self).__doc__ or "") + "\n\nPrints a success line or raises CheckFailed."
        check_function.check_name = self.name  # type: ignore[attr-defined]
        return check_function


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
        raise CheckFailed(f"{what} raised {type(err).__name__}: {err}\n(called with tensors of shapes {shapes})") from err


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


def expect_close(got: Any, expected: torch.Tensor, what: str, hint: str = "", atol: float = 1e-5, rtol: float = 1e-4) -> None:
    got = expect_shape(got, tuple(expected.shape), what)
    got = got.detach().to(expected.dtype)
    if not torch.isfinite(got).all():
        raise CheckFailed(f"{what}: contains NaN or inf" + (f"\nHint: {hint}" if hint else ""))
    # the comparison is written out so that a patched torch.allclose in a kernel cannot change it
    err = (got - expected).abs()
    tol = atol + rtol * expected.abs()
    if bool((err > tol).any()):
        worst = int(err.argmax())
        idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), expected.shape))
        msg = (
            f"{what}: values differ from the reference (max abs difference {float(err.max()):.3g}; "
            f"at index {idx} expected {float(expected.flatten()[worst]):.6g}, got {float(got.flatten()[worst]):.6g})"
        )
        raise CheckFailed(msg + (f"\nHint: {hint}" if hint else ""))


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


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=seeded(seed), dtype=dtype)


SQRT = math.sqrt
