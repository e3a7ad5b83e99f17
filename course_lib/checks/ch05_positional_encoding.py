"""Checks for assignment ch05_positional_encoding (chapter 5).

Dimension legend: P number of positions, C d_model.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from course_lib.checks._core import Check, CheckFailed, expect_close, expect_shape, expect_tensor, is_close, student_call
from course_lib.positional import MISTAKES, faulty_sinusoidal_encoding, relative_rotation, sinusoidal_encoding

# The mistake planted in the exercise's ``faulty_encoding`` is graded, so it is not stored here in
# clear (learners import this package): only a salted SHA-256 of its normalised key.
_DIAGNOSIS_SALT = "course-ch5-diagnosis-v1:"
_DIAGNOSIS_SHA256 = "e0b938bdbca8b1018b0a0bdefb3aa279c155d87a7e39184d482542e8033ee081"


def _normalise_answer(answer: str) -> str:
    return answer.strip().strip("'\"").strip().lower().replace(" ", "_").replace("-", "_")


def _is_planted(key: str) -> bool:
    return hashlib.sha256((_DIAGNOSIS_SALT + key).encode()).hexdigest() == _DIAGNOSIS_SHA256

_MISTAKE_HINTS = {
    "i_instead_of_2i": "the exponent must be 2i / d_model with i the pair index (i = column // 2): you seem to use i / d_model",
    "column_as_2i": "the exponent must use the pair's 2i (the same for a sine column and the cosine column after it); "
    "you seem to use the column index itself, so every cosine column is off",
    "column_as_i": "the exponent must be 2i / d_model with i the *pair* index (column // 2); you seem to use 2 * column / d_model",
    "sin_cos_swapped": "sine and cosine are swapped: even columns (0, 2, ...) are sines, odd columns cosines; row 0 must read 0, 1, 0, 1, ...",
    "degrees": "torch.sin and math.sin take radians; do not convert the angle to degrees (or from degrees)",
    "base_1000": "the base of the exponent is 10000",
    "positions_from_1": "positions start at 0: the first row is position 0",
    "concatenated": "use the paper's interleaved layout (sin, cos, sin, cos, ...), not all sines then all cosines",
}


def _as_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.array(x, copy=True))
    return expect_tensor(x, what)


def _diagnose_table(got: torch.Tensor, n: int, d: int) -> str:
    got = got.double()
    if not torch.isfinite(got).all():
        return "the table contains NaN or inf"
    for mistake in MISTAKES:
        if is_close(got, faulty_sinusoidal_encoding(n, d, mistake), atol=1e-6):
            return _MISTAKE_HINTS[mistake]
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(d)[None, :]
    angles = pos / 10000 ** (2 * (2 * torch.div(j, 2, rounding_mode="floor")).double() / d)
    right_angles = pos / 10000 ** ((2 * torch.div(j, 2, rounding_mode="floor")).double() / d)
    if is_close(got, right_angles.sin(), atol=1e-6):
        return "the odd columns must be cosines: PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)); you used sin for every column"
    if is_close(got, right_angles.cos(), atol=1e-6):
        return "the even columns must be sines: PE(pos, 2i) = sin(pos / 10000^(2i/d_model)); you used cos for every column"
    if is_close(got, torch.where(j % 2 == 0, angles.sin(), angles.cos()), atol=1e-6):
        return ("the exponent is 2i / d_model with i the pair index; you used 2 * (2i) (in a loop over range(0, d_model, 2) "
                "the loop variable is already 2i)")
    return ""


class EncodingTableCheck(Check):
    """sinusoidal_table(n_positions, d_model) -> (n_positions, d_model) float64 tensor."""

    name = "ch5.sinusoidal_table"
    success = "the table matches the formula to 10 decimals, in the interleaved layout, for even and odd d_model (the grader also tries other sizes)"
    sizes = ((11, 10), (13, 6), (9, 7))  # the instructions: an odd d_model ends with an unpaired sine
    what = "sinusoidal_table"

    def make_inputs(self):
        return {"sizes": [list(s) for s in self.sizes]}

    def vary_inputs(self, inputs, g):  # other lengths, d_model of the same parity
        r = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
        return {"sizes": [[max(1, n + r(-3, 12)), max(d % 2 or 2, d + 2 * r(-2, 3))] for n, d in inputs["sizes"]]}

    def run(self, fn, inputs):
        tables = []
        for n, d in inputs["sizes"]:
            out = student_call(fn, n, d, what=f"{self.what}({n}, {d})")
            tables.append(_as_tensor(out, f"{self.what}({n}, {d})"))
        return {"tables": tables}

    def verify(self, inputs, outputs):
        for (n, d), got in zip(inputs["sizes"], outputs["tables"]):
            what = f"{self.what}({n}, {d})"
            expect_shape(got, (n, d), what, hint="one row per position, one column per dimension")
            if not got.is_floating_point():
                raise CheckFailed(f"{what}: expected floating-point values, got dtype {got.dtype}")
            ref = sinusoidal_encoding(n, d, dtype=torch.float64)
            if got.dtype != torch.float64 and is_close(got, ref, atol=1e-6):
                raise CheckFailed(f"{what}: right to about 7 decimals but the dtype is {got.dtype}\nHint: compute in float64 (torch.float64) to get 10 exact decimals")
            # behaviour: row 0 is 0, 1, 0, 1, ... (sin 0, cos 0)
            row0 = ref[0]
            if not is_close(got[0], row0, atol=1e-9):
                hint = _diagnose_table(got, n, d) or "row 0 is position 0: sin(0) = 0 in the even columns, cos(0) = 1 in the odd ones"
                raise CheckFailed(f"{what}: row 0 (position 0) should read {row0.tolist()}, got {[round(float(v), 4) for v in got[0]]}\nHint: {hint}")
            expect_close(got.double(), ref, what, hint=_diagnose_table(got, n, d), atol=1e-9, rtol=0.0, axes="position column")


class EncodingTableOtherSizesCheck(EncodingTableCheck):
    """sinusoidal_table with more positions, and an odd d_model (the last column is an unpaired sine)."""

    name = "ch5.sinusoidal_table_other_sizes"
    sizes = ((50, 16), (7, 5), (1, 2))


class FixedEncodingCheck(EncodingTableCheck):
    """fixed_encoding(n_positions, d_model): the faulty implementation, repaired."""

    name = "ch5.fixed_encoding"
    success = "the repaired function matches the formula"
    sizes = ((11, 10), (20, 8))
    what = "fixed_encoding"

    def verify(self, inputs, outputs):
        planted = next(m for m in MISTAKES if _is_planted(m))
        for (n, d), got in zip(inputs["sizes"], outputs["tables"]):
            if isinstance(got, torch.Tensor) and tuple(got.shape) == (n, d) and is_close(got.double(), faulty_sinusoidal_encoding(n, d, planted), atol=1e-9):
                raise CheckFailed(f"fixed_encoding({n}, {d}) still returns the faulty table.\nHint: change the line that computes the exponent")
        super().verify(inputs, outputs)


class BugDiagnosisCheck(Check):
    """diagnosis: the key of course_lib.positional.MISTAKES that names the bug in faulty_encoding."""

    name = "ch5.bug_diagnosis"
    success = "that is the bug"

    def make_inputs(self):
        return {"choices": sorted(MISTAKES)}

    def vary_inputs(self, inputs, g):  # an answer is a name: nothing to redraw but the order the choices are listed in
        return {"choices": [inputs["choices"][i] for i in torch.randperm(len(inputs["choices"]), generator=g)]}

    def run(self, answer, inputs):
        if not isinstance(answer, str):
            raise CheckFailed(f"diagnosis should be a string, one of {inputs['choices']}; got {type(answer).__name__}")
        return {"answer": answer}

    def verify(self, inputs, outputs):
        answer = outputs["answer"]
        key = _normalise_answer(answer)
        if key not in inputs["choices"]:
            raise CheckFailed(f"{answer!r} is not one of the choices: {inputs['choices']}")
        if _is_planted(key):
            return
        hints = {
            "i_instead_of_2i": "with i / d_model the *sine* columns would be wrong too; compare column 2 of the faulty table with the formula",
            "column_as_i": "with 2 * column / d_model the sine columns (2, 4, ...) would be wrong too; are they?",
            "sin_cos_swapped": "look at row 0 of the faulty table: it reads 0, 1, 0, 1, ... so sine and cosine are where they belong",
            "degrees": "row 1, column 0 of the faulty table is sin(1 radian) = 0.8415, as it should be",
            "base_1000": "the code uses 10000; which columns differ from the formula?",
            "positions_from_1": "row 0 of the faulty table is position 0 (0, 1, 0, 1, ...)",
            "concatenated": "the faulty table alternates sin and cos columns; which of them differ from the formula?",
        }
        raise CheckFailed(f"not this one: {MISTAKES[key]}.\nHint: {hints.get(key, 'compare the faulty table with the formula column by column')}")


def _angle_hint(M: torch.Tensor, k: int, d: int) -> str:
    """Read the angle of each 2x2 block and name the frequency it was built with."""
    i = torch.arange(d // 2, dtype=torch.float64)
    theta = torch.atan2(M[2 * i.long(), 2 * i.long() + 1], M[2 * i.long(), 2 * i.long()])  # sin / cos of each block
    wrap = lambda a: torch.atan2(torch.sin(a), torch.cos(a))  # noqa: E731 - angles modulo 2 pi
    candidates = {
        "the frequency of pair i is omega_i = 1 / 10000^(2i / d_model) with i the pair index; you used 2 * (2i), i.e. the column index": k / 10000 ** (4 * i / d),
        "the frequency of pair i is omega_i = 1 / 10000^(2i / d_model); you used i / d_model in the exponent": k / 10000 ** (i / d),
        "the angles must be in radians (torch.sin, math.cos take radians); you converted them to degrees": torch.deg2rad(k / 10000 ** (2 * i / d)),
        "you multiplied by 10000^(2i / d_model): omega_i = 1 / 10000^(2i / d_model) divides": k * 10000 ** (2 * i / d),
        "the base of the exponent is 10000": k / 1000 ** (2 * i / d),
    }
    for hint, angle in candidates.items():
        if bool((wrap(theta - angle).abs() < 1e-6).all()):
            return hint
    right = k / 10000 ** (2 * i / d)
    wrong = (wrap(theta - right).abs() > 1e-6).nonzero().flatten().tolist()
    if wrong and bool((right[wrong].abs() > 1e-12).all()):
        ratios = ", ".join(f"{float(theta[j] / right[j]):.3g}" for j in wrong[:4])
        return (f"the angle of pair i is k * omega_i with omega_i = 1 / 10000^(2i / d_model); yours differs at pairs {wrong[:6]} "
                f"(your angle / the right one: {ratios})")
    return "the angle of pair i is k * omega_i with omega_i = 1 / 10000^(2i / d_model)"


class RotationMatrixCheck(Check):
    """rotation_matrix(offset, d_model) -> M (d_model, d_model) with PE(pos + offset) = M @ PE(pos)."""

    name = "ch5.rotation_matrix"
    success = "M_k maps PE(pos) to PE(pos + k) for every pos, one 2x2 rotation per pair, for k > 0, k = 0 and k < 0 (the grader also tries other cases)"
    cases = ((1, 8), (3, 8), (10, 6), (0, 6), (-3, 8))  # the instructions: k may be 0 or negative

    def make_inputs(self):
        return {"cases": [list(c) for c in self.cases]}

    def vary_inputs(self, inputs, g):  # other offsets, other even d_model
        r = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
        return {"cases": [[r(1, 15), 2 * r(1, 6)] for _ in inputs["cases"]]}

    def run(self, fn, inputs):
        mats = []
        for k, d in inputs["cases"]:
            mats.append(_as_tensor(student_call(fn, k, d, what=f"rotation_matrix({k}, {d})"), f"rotation_matrix({k}, {d})"))
        return {"matrices": mats}

    def verify(self, inputs, outputs):
        for (k, d), M in zip(inputs["cases"], outputs["matrices"]):
            what = f"rotation_matrix({k}, {d})"
            expect_shape(M, (d, d), what, hint="one (d_model x d_model) matrix acting on a whole encoding vector")
            if M.dtype != torch.float64:
                raise CheckFailed(f"{what}: expected dtype torch.float64 (as the docstring promises), got {M.dtype}\n"
                                  "Hint: create M with dtype=torch.float64; float32 keeps only about 7 decimals")
            M = M.double()
            if not torch.isfinite(M).all():
                raise CheckFailed(f"{what}: contains NaN or inf")
            # behaviour 1: block-diagonal, one 2x2 block per (sin, cos) pair
            block = torch.zeros(d, d, dtype=torch.bool)
            for i in range(0, d, 2):
                block[i : i + 2, i : i + 2] = True
            outside = M.masked_fill(block, 0.0).abs().max()
            if outside > 1e-9:
                raise CheckFailed(f"{what}: entries outside the 2x2 diagonal blocks should be 0, got up to {float(outside):.3g}\n"
                                  "Hint: the rotation only mixes the sine and cosine of the *same* pair (columns 2i and 2i+1)")
            # behaviour 2: it maps PE(pos) to PE(pos + k)
            pe = sinusoidal_encoding(60 + abs(k), d, dtype=torch.float64)
            start = max(0, -k)
            base_rows, target_rows = pe[start : start + 50], pe[start + k : start + k + 50]
            mapped = base_rows @ M.T  # each row: M @ PE(pos)
            if not is_close(mapped, target_rows, atol=1e-6):
                if k != 0 and is_close(base_rows @ M, target_rows, atol=1e-6):
                    hint = "your M maps PE(pos) to PE(pos - k): the sin terms have the wrong sign (you built the transpose)"
                elif not is_close(M @ M.T, torch.eye(d, dtype=torch.float64), atol=1e-6):
                    hint = "a rotation block [[cos, sin], [-sin, cos]] is orthogonal (M @ M.T = I): check which entries get cos and which sin"
                else:
                    hint = _angle_hint(M, k, d)
                expect_close(mapped, target_rows, f"{what} applied to PE(pos), compared with PE(pos + {k})", hint=hint, atol=1e-6)
            expect_close(M, relative_rotation(k, d), what, atol=1e-6)


class RotationMatrixOtherCasesCheck(RotationMatrixCheck):
    """rotation_matrix for offset 0, a negative offset and a wider encoding."""

    name = "ch5.rotation_matrix_other_cases"
    cases = ((0, 4), (-2, 10), (25, 16))


check_sinusoidal_table = EncodingTableCheck().as_function()
check_sinusoidal_table_other_sizes = EncodingTableOtherSizesCheck().as_function()
check_fixed_encoding = FixedEncodingCheck().as_function()
check_bug_diagnosis = BugDiagnosisCheck().as_function()
check_rotation_matrix = RotationMatrixCheck().as_function()
check_rotation_matrix_other_cases = RotationMatrixOtherCasesCheck().as_function()


# --------------------------------------------------------------------------- the references as steps (diagnosis by mutation, issue 26)

from course_lib.checks._mutants import Program, step  # noqa: E402


def _interleave(sines, cosines):
    table = cosines.clone()
    table[:, 0::2] = sines[:, 0::2]
    return table


TABLE_STEPS = Program(
    [step("exponent", "scale", "two_i", scale=("d_model", -1.0), what="the exponent 2i / d_model", axes="1 column"),
     step("freq", "pow", "exponent", fn=lambda e: 10000.0 ** (-e), what="10000^(-2i/d_model)", axes="1 column"),
     step("angles", "mul", "pos", "freq", what="pos * frequency", axes="position column"),
     step("sines", "sin", "angles", fn=torch.sin, what="sin", axes="position column"),
     step("cosines", "cos", "angles", fn=torch.cos, what="cos", axes="position column"),
     step("table", "interleave", "sines", "cosines", fn=_interleave, what="the interleaving (sin in even columns, cos in odd)", axes="position column")],
    ("table",), sizes=lambda env: {"d_model": env["two_i"].shape[-1], "n_positions": env["pos"].shape[0]},
    legend={"position": "position", "column": "column"}, names={"sines": "the sines", "cosines": "the cosines"})


def _cases_table(self, inputs, outputs):
    cases = []
    for (n, d), got in zip(inputs["sizes"], outputs.get("tables") or [None] * len(inputs["sizes"])):
        env = {"pos": torch.arange(n, dtype=torch.float64)[:, None], "two_i": (torch.arange(d) // 2 * 2).double()[None, :]}
        cases.append((TABLE_STEPS, env, {"table": got}))
    return cases


EncodingTableCheck.mutation_cases = _cases_table
