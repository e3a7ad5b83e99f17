"""Diagnosis by mutation (issue 26): name a wrong answer by the small change of the reference that reproduces it.

A check declares its reference computation as named steps (a :class:`Program`). After the learner's
answer has failed (never before: a right answer costs nothing), the engine builds mutants of that program
by general transformations and runs each on the same inputs as the learner's:

    axes       softmax / a reduction over each other axis (or over all of them); swap two axes of a result
    steps      drop a step, do it twice, or do two neighbouring steps in the other order
    scale      no scale, or another one (1/d, 1/sqrt(d), sqrt(d) for every size the check names); the scale
               moved after the next nonlinearity
    sign/mask  a result negated; a mask inverted or ignored
    roles      two inputs (or two weights) of the same shape exchanged
    outputs    the returned tuple in another order
    dtype      the computation done in float32 where float64 is needed

A mutant that matches every output the learner returned (within tolerance), while the reference does not,
explains the answer: its hint is written from the transformation ("your output equals the reference with
the softmax taken over the query axis T instead of the key axis S"). Two explanations that give the same
values are named together; more than two, or none, name nothing, and the check keeps its own hint
(precision over recall: a wrong cause is worse than the generic line).

Shapes: a step's ``axes`` names its result's dimensions ("B T S"); the program's ``legend`` says what a
letter means ({"T": "query", "S": "key"}).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

__all__ = ["Step", "Program", "Mutant", "explain", "diagnose"]

NEG_INF = float("-inf")


def _softmax(x, dim=-1):
    return x.softmax(dim)


def _masked(x, mask, fill=NEG_INF):
    return x.masked_fill(~mask, fill)


#: the operations a step may use; the engine knows what each one's parameters mean
OPS: dict[str, Callable] = {
    "softmax": _softmax,
    "log_softmax": lambda x, dim=-1: x.log_softmax(dim),
    "sum": lambda x, dim=-1: x.sum(dim) if dim is not None else x.sum(),
    "mean": lambda x, dim=-1: x.mean(dim) if dim is not None else x.mean(),
    "norm": lambda x, dim=-1: x.norm(dim=dim, keepdim=True) if dim is not None else x.norm(),
    "scale": lambda x, factor=1.0: x * factor,
    "mask": _masked,
    "matmul": lambda a, b: a @ b,
    "matmul_t": lambda a, b: a @ b.transpose(-2, -1),  # a b^T
    "linear": lambda x, w, b=None: torch.nn.functional.linear(x, w, b),  # x W^T + b (nn.Linear)
    "xw": lambda x, w: x @ w,  # x W (weights stored (in, out))
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "tanh": torch.tanh, "relu": torch.relu, "exp": torch.exp, "sigmoid": torch.sigmoid,
    "gelu": torch.nn.functional.gelu, "log": torch.log, "neg": torch.neg,
}
#: steps with one tensor argument that keep their input's meaning (can be dropped, doubled, reordered)
NONLINEAR = {"softmax", "tanh", "relu", "exp", "sigmoid", "gelu", "log"}
REDUCTIONS = {"softmax", "log_softmax", "sum", "mean", "norm"}
WORDS = {"softmax": "the softmax", "log_softmax": "the log-softmax", "sum": "the sum", "mean": "the mean", "norm": "the norm", "tanh": "tanh",
         "relu": "ReLU", "exp": "exp", "sigmoid": "the sigmoid", "gelu": "GELU", "log": "the log"}


@dataclass
class Step:
    """``out = OPS[op](*env[args], **params)``, or ``fn`` when given (a step the engine treats as a black box).

    ``scale=("d_k", -0.5)`` makes the factor a size of the check raised to a power; ``what`` names the step in
    hints ("the scores"); ``axes`` names the result's dimensions ("B T S")."""

    out: str
    op: str
    args: tuple[str, ...]
    params: dict = field(default_factory=dict)
    scale: tuple[str, float] | None = None
    what: str = ""
    axes: str = ""
    fn: Callable | None = None

    def run(self, env: dict, sizes: dict) -> Any:
        vals = [env[a] if isinstance(a, str) else a for a in self.args]
        params = dict(self.params)
        if self.scale is not None:
            name, power = self.scale
            params["factor"] = float(sizes[name]) ** power if name != "1" else 1.0
        f = self.fn or OPS[self.op]
        return f(*vals, **params)

    @property
    def label(self) -> str:
        return self.what or WORDS.get(self.op, self.out)


def step(out: str, op: str, *args, what: str = "", axes: str = "", scale=None, fn=None, **params) -> Step:
    """Shorthand: step("scores", "matmul_t", "q", "k", axes="B T S")."""
    return Step(out, op, tuple(args), params, scale, what, axes, fn)


@dataclass
class Mutant:
    name: str  # a short key, e.g. "softmax dim T"
    hint: str  # the sentence the learner reads
    steps: list[Step] | None = None  # None: the program's own
    env: Callable[[dict], dict] | None = None  # transforms the inputs (roles exchanged)
    order: tuple[str, ...] | None = None  # outputs returned in this order
    float32: bool = False
    post: Callable[[dict], dict] | None = None  # transforms the results (axes swapped)
    same_as: str | None = None  # the name of a mutant that is the same mistake (named instead when both match)


@dataclass
class Program:
    """A reference computation as steps over named inputs; ``outputs`` are the step results (or inputs) returned.

    ``sizes(env)`` gives the named sizes scales may use ({"d_k": 6, "d_v": 4, ...}); ``legend`` names the axis
    letters; ``roles`` lists groups of inputs whose values may be exchanged by mistake (default: any two
    tensor inputs of the same shape); ``hints`` overrides the sentence of a mutant by its name."""

    steps: list[Step]
    outputs: tuple[str, ...]
    sizes: Callable[[dict], dict] = lambda env: {}
    legend: dict[str, str] = field(default_factory=dict)
    roles: list[tuple[str, str]] | None = None
    hints: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # input name -> words ("the encoder states")
    axes: dict[str, str] = field(default_factory=dict)  # input name -> its axis letters ("B T S")

    @property
    def leaves(self) -> list[str]:
        """The inputs the steps read (names no step produces), in order of first use."""
        produced, seen = {s.out for s in self.steps}, []
        for s in self.steps:
            for a in s.args:
                if isinstance(a, str) and a not in produced and a not in seen:
                    seen.append(a)
        return seen + [o for o in self.outputs if o not in produced and o not in seen]

    def run(self, env: dict, steps: list[Step] | None = None) -> dict:
        env = dict(env)
        sizes = self.sizes(env)
        for step in steps if steps is not None else self.steps:
            env[step.out] = step.run(env, sizes)
        return {name: env[name] for name in self.outputs}

    # ------------------------------------------------------------------ the mutants

    def mutants(self, env: dict) -> list[Mutant]:
        out: list[Mutant] = []
        steps = self.steps
        sizes = self.sizes(env)
        produced = {s.out for s in steps}
        ref_env = dict(env)
        for s in steps:
            try:
                ref_env[s.out] = s.run(ref_env, sizes)
            except Exception:  # noqa: BLE001 - a program that cannot run names nothing
                return []

        def ndim(name):
            v = ref_env.get(name)
            return v.dim() if isinstance(v, torch.Tensor) else 0

        def axis_word(step: Step, dim: int | None, source: str) -> str:
            if dim is None:
                return "over the whole tensor"
            letters = (step.axes or "").split()
            src = next((t for t in self.steps if t.out == source), None)
            src_letters = (src.axes if src is not None else self.axes.get(source, "")).split()
            letters = src_letters if step.op in ("sum", "mean", "norm") or not letters else letters
            n = ndim(source)
            if len(letters) == n:
                letter = letters[dim % n]
                word = self.legend.get(letter)
                return f"over the {word} axis {letter}" if word else f"over axis {letter}"
            return f"over axis {dim % n if n else dim}"

        for i, s in enumerate(steps):
            rest_before, rest_after = steps[:i], steps[i + 1 :]
            data_args = [a for a in s.args if isinstance(a, str) and a in produced]
            # 1. a reduction (softmax, sum, mean, norm) over another axis, or over everything
            if s.op in REDUCTIONS and s.args:
                n = ndim(s.args[0])
                dim0 = s.params.get("dim", -1)
                for d in list(range(n)) + ([None] if "softmax" not in s.op else []):
                    if dim0 is not None and d is not None and d % n == dim0 % n:
                        continue
                    p = dict(s.params, dim=d)
                    right, wrong = axis_word(s, dim0, s.args[0]), axis_word(s, d, s.args[0])
                    out.append(Mutant(f"{s.op} dim {d}", f"your output equals the reference with {s.label} taken {wrong} instead of {right}",
                                      rest_before + [replace(s, params=p)] + rest_after))
                if s.op in ("sum", "mean"):
                    other = "mean" if s.op == "sum" else "sum"
                    out.append(Mutant(f"{other} for {s.op}", f"your output equals the reference with a {other} where it takes a {s.op} ({s.label})",
                                      rest_before + [replace(s, op=other, what="")] + rest_after))
            # 2. a scale: none, another size, a power of the other sign; moved after the next nonlinearity
            if s.op == "scale" and s.scale is not None:
                name0, p0 = s.scale
                v0 = float(sizes[name0]) ** p0
                seen = {round(v0, 12)}
                cands = [("1", 0.0)] + [(n, p) for n in sizes for p in (-0.5, -1.0, 0.5, 1.0)]
                for n, p in cands:
                    v = 1.0 if n == "1" else float(sizes[n]) ** p
                    if round(v, 12) in seen:
                        continue
                    seen.add(round(v, 12))
                    m = Mutant(f"scale {n}^{p}", f"{s.label}: {_scale_words(n, p)} instead of {_scale_words(name0, p0, right=True)}",
                               rest_before + [replace(s, scale=(n, p))] + rest_after)
                    m.same_as = f"drop {s.out}" if n == "1" else None  # no scale is the scale step dropped
                    out.append(m)
                # the scale applied after the next nonlinearity (whose data input is this step's result)
                for j in range(i + 1, len(steps)):
                    t = steps[j]
                    if t.op in NONLINEAR and t.args and t.args[0] == s.out:
                        moved = [replace(t, args=(s.args[0],) + t.args[1:], out=s.out), replace(s, args=(s.out,), out=t.out)]
                        out.append(Mutant(f"scale after {t.op}", f"{s.label} is applied after {t.label} instead of before it",
                                          rest_before + moved + steps[i + 1 : j] + steps[j + 1 :]))
                        break
            # 3. drop a step, or do it twice (steps with one data input whose result has its shape)
            if len(data_args) <= 1 and s.args and s.op not in ("xw", "linear", "matmul", "matmul_t") or s.op in ("scale", "mask"):
                src = s.args[0] if isinstance(s.args[0], str) else None
                if src is not None and isinstance(ref_env.get(src), torch.Tensor) and isinstance(ref_env.get(s.out), torch.Tensor) \
                        and ref_env[src].shape == ref_env[s.out].shape:
                    out.append(Mutant(f"drop {s.out}", self.hints.get(f"drop {s.out}") or f"your output equals the reference without {s.label}",
                                      rest_before + [Step(s.out, "id", (src,), fn=lambda x: x)] + rest_after))
                    if s.op not in ("mask",):
                        twice = [replace(s, out=s.out + "#1"), replace(s, args=(s.out + "#1",) + s.args[1:])]
                        out.append(Mutant(f"twice {s.out}", f"your output equals the reference with {s.label} applied twice",
                                          rest_before + twice + rest_after))
            # 4. a mask inverted or ignored
            if s.op == "mask" and len(s.args) >= 2 and isinstance(s.args[1], str):
                m = s.args[1]
                hint = f"the mask is inverted: True means 'may attend', so fill where {self.names.get(m, m)} is False"
                if m in env:  # an input: inverted wherever it is used
                    out.append(Mutant(f"mask inverted {s.out}", hint, env=_inverter(m)))
                else:
                    f = s.fn or OPS[s.op]
                    inv = Step(s.out, s.op, s.args, s.params, fn=lambda x, mask, *a, _f=f, **kw: _f(x, ~mask, *a, **kw))
                    out.append(Mutant(f"mask inverted {s.out}", hint, rest_before + [inv] + rest_after))
            # 5. the sign of a result flipped
            if s.op not in ("mask",) and isinstance(ref_env.get(s.out), torch.Tensor) and ref_env[s.out].is_floating_point():
                neg = Step(s.out, s.op, s.args, s.params, s.scale, fn=_negated(s))
                out.append(Mutant(f"sign {s.out}", f"your output equals the reference with the sign of {s.label} flipped",
                                  rest_before + [neg] + rest_after))
        # 5b. one argument of a step replaced by another value of the same shape (an input, a weight, an earlier result)
        available = list(env)
        for i, s in enumerate(steps):
            for pos, a in enumerate(s.args):
                va = ref_env.get(a) if isinstance(a, str) else None
                if not isinstance(va, torch.Tensor):
                    continue
                for other in available:
                    vo = ref_env.get(other)
                    if other == a or not isinstance(vo, torch.Tensor) or vo.shape != va.shape or vo.dtype != va.dtype:
                        continue
                    args = s.args[:pos] + (other,) + s.args[pos + 1 :]
                    wa, wo = self.names.get(a, a), self.names.get(other, other)
                    hint, same = f"{s.label} uses {wo} where the reference uses {wa}", None
                    producer = next((t for t in steps if t.out == a), None)
                    if producer is not None and other in producer.args:  # skips the step that makes `a`
                        rest = [x for x in producer.args if x != other and isinstance(x, str)]
                        same = f"drop {a}"
                        if producer.op == "add" and len(rest) == 1:
                            hint = f"your output equals the reference without {self.names.get(rest[0], rest[0])} added"
                        elif len(rest) == 0 or producer.op in NONLINEAR or producer.op in ("scale", "mask", "neg"):
                            hint = f"{s.label} skips {producer.label}: it uses {wo} where the reference uses {wa}"
                    m = Mutant(f"arg {s.out}:{a}->{other}", hint, steps[:i] + [replace(s, args=args)] + steps[i + 1 :])
                    m.same_as = same
                    out.append(m)
            available.append(s.out)
        # 5d. two arguments of one step in each other's place (same shape)
        for i, s in enumerate(steps):
            targs = [(pos, a) for pos, a in enumerate(s.args) if isinstance(a, str) and isinstance(ref_env.get(a), torch.Tensor)]
            for (p1, a1), (p2, a2) in itertools.combinations(targs, 2):
                if ref_env[a1].shape == ref_env[a2].shape and a1 != a2:
                    args = list(s.args)
                    args[p1], args[p2] = a2, a1
                    w1, w2 = self.names.get(a1, a1), self.names.get(a2, a2)
                    out.append(Mutant(f"args {s.out}:{a1}<->{a2}", f"{s.label} has {w1} and {w2} in each other's place",
                                      steps[:i] + [replace(s, args=tuple(args))] + steps[i + 1 :]))
        # 5c. the same reduction on parallel steps (e.g. both norms) moved to another axis, or to all of them, at once
        groups: dict[tuple, list[int]] = {}
        for i, s in enumerate(steps):
            if s.op in REDUCTIONS and s.fn is None:
                groups.setdefault((s.op, s.params.get("dim", -1)), []).append(i)
        for (op, dim0), idx in groups.items():
            if len(idx) < 2:
                continue
            n = ndim(steps[idx[0]].args[0])
            if any(ndim(steps[i].args[0]) != n for i in idx):
                continue
            for d in list(range(n)) + ([None] if "softmax" not in op else []):
                if dim0 is not None and d is not None and d % n == dim0 % n:
                    continue
                new = list(steps)
                for i in idx:
                    new[i] = replace(steps[i], params=dict(steps[i].params, dim=d))
                right, wrong = axis_word(steps[idx[0]], dim0, steps[idx[0]].args[0]), axis_word(steps[idx[0]], d, steps[idx[0]].args[0])
                words = " and ".join(steps[i].label for i in idx)
                out.append(Mutant(f"{op} dim {d} (all)", f"your output equals the reference with {words} taken {wrong} instead of {right}", new))
        # 6. two neighbouring single-input steps in the other order (x -> A -> B became x -> B -> A)
        for i in range(len(steps) - 1):
            a = steps[i]
            for j in range(i + 1, len(steps)):
                b = steps[j]
                if not b.args or b.args[0] != a.out:
                    continue
                a_data = [x for x in a.args if isinstance(x, str) and x in produced]
                b_data = [x for x in b.args if isinstance(x, str) and x in produced]
                uses = sum(a.out in t.args for t in steps) + (a.out in self.outputs)
                if len(b_data) != 1 or len(a_data) > 1 or uses != 1 or not a.args or not isinstance(a.args[0], str):
                    continue
                if a.op == "scale" and b.op in NONLINEAR:
                    continue  # named above as "applied after"
                swapped = [replace(b, args=(a.args[0],) + b.args[1:], out=a.out), replace(a, args=(a.out,) + a.args[1:], out=b.out)]
                out.append(Mutant(f"order {a.out}/{b.out}", f"{b.label} is applied before {a.label}; the reference applies {a.label} first, then {b.label}",
                                  steps[:i] + swapped + steps[i + 1 : j] + steps[j + 1 :]))
                break
        # 7. two inputs exchanged
        tensors = [k for k, v in env.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
        pairs = self.roles if self.roles is not None else [(a, b) for a, b in itertools.combinations(tensors, 2) if env[a].shape == env[b].shape]
        for a, b in pairs:
            wa, wb = self.names.get(a, a), self.names.get(b, b)
            out.append(Mutant(f"swap {a}/{b}", f"{wa} and {wb} are used in each other's place", env=_swapper(a, b)))
            if env.get(a) is not None and isinstance(env[a], torch.Tensor) and env[a].dim() == 2 and env[a].shape[0] == env[a].shape[1]:
                pass
        # 8. square weights transposed
        for k in tensors:
            v = env[k]
            if v.dim() == 2 and v.shape[0] == v.shape[1] and any(k in st.args for st in steps if st.op in ("xw", "linear")):
                out.append(Mutant(f"transpose {k}", f"{self.names.get(k, k)} is used transposed (W^T where the reference uses W)",
                                  env=_transposer(k)))
        # 9. outputs returned in another order
        if len(self.outputs) > 1:
            for perm in itertools.permutations(self.outputs):
                if perm != tuple(self.outputs):
                    out.append(Mutant(f"order {perm}", f"the results come in another order: you returned ({', '.join(perm)}); return ({', '.join(self.outputs)})",
                                      order=perm))
        # 10. two axes of a returned result swapped
        for o in self.outputs:
            v = ref_env.get(o)
            if isinstance(v, torch.Tensor) and v.dim() >= 2:
                st = next((t for t in steps if t.out == o), None)
                letters = st.axes.split() if st is not None and st.axes else []
                for d1, d2 in itertools.combinations(range(v.dim()), 2):
                    if v.shape[d1] == v.shape[d2]:
                        n1 = letters[d1] if len(letters) == v.dim() else str(d1)
                        n2 = letters[d2] if len(letters) == v.dim() else str(d2)
                        out.append(Mutant(f"transpose {o} {d1}{d2}", f"{o} has its axes {n1} and {n2} swapped (a transpose or view on the wrong axes)",
                                          post=_axes_swapper(o, d1, d2)))
        # 11. float32 where float64 is needed
        if any(isinstance(v, torch.Tensor) and v.dtype == torch.float64 for v in env.values()):
            out.append(Mutant("float32", "right to about 7 digits: the computation was done in float32; keep float64 (the inputs' dtype)", float32=True))
        for m in out:
            if m.name in self.hints:
                m.hint = self.hints[m.name]
        return out

    def run_mutant(self, m: Mutant, env: dict) -> dict | None:
        try:
            e = m.env(env) if m.env is not None else env
            if m.float32:
                e = {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in e.items()}
            res = self.run(e, m.steps)
            if m.post is not None:
                res = m.post(res)
            if m.order is not None:
                res = {name: res[src] for name, src in zip(self.outputs, m.order)}
            return res
        except Exception:  # noqa: BLE001 - a mutant that cannot run on these inputs explains nothing
            return None


def _negated(s: Step) -> Callable:
    f = s.fn or OPS[s.op]

    def neg(*args, **kw):
        return -f(*args, **kw)

    return neg


def _swapper(a: str, b: str) -> Callable[[dict], dict]:
    return lambda env: {**env, a: env[b], b: env[a]}


def _inverter(k: str) -> Callable[[dict], dict]:
    return lambda env: {**env, k: ~env[k]}


def _transposer(k: str) -> Callable[[dict], dict]:
    return lambda env: {**env, k: env[k].transpose(0, 1)}


def _axes_swapper(o: str, d1: int, d2: int) -> Callable[[dict], dict]:
    return lambda res: {**res, o: res[o].transpose(d1, d2)}


def _scale_words(name: str, power: float, right: bool = False) -> str:
    if name == "1":
        return "no scale"
    verb = "divided by" if power < 0 else "multiplied by"
    root = f"sqrt({name})" if abs(abs(power) - 0.5) < 1e-9 else name
    return f"{verb} {root}"


OPS["id"] = lambda x: x


# --------------------------------------------------------------------------- matching

def _close(got: Any, want: Any, atol: float, rtol: float) -> bool:
    if not isinstance(got, torch.Tensor) or not isinstance(want, torch.Tensor) or tuple(got.shape) != tuple(want.shape):
        return False
    g, w = got.detach().double(), want.detach().double()
    if not bool(torch.isfinite(g).all()) or not bool(torch.isfinite(w).all()):
        return bool(torch.equal(g.isnan(), w.isnan())) and bool(((g - w).abs().nan_to_num(0.0) <= atol + rtol * w.abs().nan_to_num(0.0)).all())
    return bool(((g - w).abs() <= atol + rtol * w.abs()).all())


def explain(program: Program, env: dict, got: dict[str, Any], atol: float = 1e-5, rtol: float = 1e-4) -> list[Mutant] | None:
    """The mutants that reproduce every output in ``got`` (name -> the learner's value) where the reference
    does not; None when the learner's outputs are right (or not comparable) on this case."""
    env = {k: env[k] for k in program.leaves}
    ref = program.run(env)
    given = {k: v for k, v in got.items() if isinstance(v, torch.Tensor) and k in ref}
    if not given or all(_close(v, ref[k], atol, rtol) for k, v in given.items()):
        return None
    found = []
    for m in program.mutants(env):
        res = program.run_mutant(m, env)
        if res is None:
            continue
        if all(_close(v, res[k], atol, rtol) for k, v in given.items()) and not all(_close(res[k], ref[k], atol, rtol) for k in given):
            if m.float32 and not all(v.dtype == torch.float32 for v in given.values()):
                continue
            found.append((m, res))
    # mutants that give the same values are one explanation in several words: keep at most two causes
    return [m for m, _ in found]


#: fewer compared values than this (e.g. one scalar loss) could match a mutant by chance: name nothing
MIN_EVIDENCE = 4


def _changing(program: Program, env: dict, got: dict, atol: float, rtol: float) -> set[str]:
    """The mutants that change an output the learner got right on this case."""
    env = {k: env[k] for k in program.leaves}
    ref = program.run(env)
    given = [k for k, v in got.items() if isinstance(v, torch.Tensor) and k in ref]
    if not given:
        return set()
    changed = set()
    for m in program.mutants(env):
        res = program.run_mutant(m, env)
        if res is not None and not all(_close(res[k], ref[k], atol, rtol) for k in given):
            changed.add(m.name)
    return changed


def diagnose(cases: list[tuple[Program, dict, dict]], atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """One hint for the cases (program, inputs, learner outputs) of a check, or None.

    A mutant must explain every case where the learner is wrong (a mutant that cannot be built for a case
    is neutral there). One explanation: its hint; two: both, as equally good; more: None (too ambiguous)."""
    names: dict[str, Mutant] | None = None
    excluded: set[str] = set()
    evidence = 0
    for program, env, got in cases:
        try:
            found = explain(program, env, got, atol, rtol)
            if found is None:  # the learner is right here: a mutant that changes this case is not their mistake
                excluded |= _changing(program, env, got, atol, rtol)
                continue
        except Exception:  # noqa: BLE001 - a diagnosis never turns a verdict into a crash
            found = []
        evidence += sum(v.numel() for v in got.values() if isinstance(v, torch.Tensor))
        here = {m.name: m for m in found}
        names = here if names is None else {k: v for k, v in names.items() if k in here}
        if not names:
            return None
    names = {k: v for k, v in (names or {}).items() if k not in excluded}
    if not names or evidence < MIN_EVIDENCE:
        return None
    names = {k: v for k, v in names.items() if v.same_as not in names}  # one mistake said two ways: the plainer words
    hints = list(dict.fromkeys(m.hint for m in names.values()))
    if len(hints) == 1:
        return hints[0]
    if len(hints) == 2:
        return f"two mistakes give exactly your values, either {hints[0]}; or {hints[1]}"
    return None


def with_hint(err: Exception, hint: str) -> str:
    """The failure's message with its hint replaced by ``hint`` (the 'what differs' lines are kept)."""
    msg = str(err)
    head = msg.split("\nHint: ")[0]
    return f"{head}\nHint: {hint}"


_ = math  # sizes may be given as math expressions by checks
