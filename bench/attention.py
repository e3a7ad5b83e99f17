"""Forward+backward time of course_lib attention vs PyTorch's, as ratios in one run.

    python bench/attention.py [--repeats 15]

A ratio is course_lib time / torch time (median of repeated runs): 1.0 is parity,
the target is <= 1.3.

Why scaled_dot_product_attention is compared twice: PyTorch's default CPU kernel
for F.scaled_dot_product_attention is a fused (flash-style) kernel that never
materialises the (B, H, T, S) weight matrix. course_lib's function returns those
weights (chapters plot them), so it must materialise them and cannot match the
fused kernel's memory traffic; its fair reference is PyTorch's own "math"
backend, which does the same steps. MultiHeadAttention(need_weights=False)
calls the fused kernel and is compared with torch's fast path.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from course_lib.attention import MultiHeadAttention, scaled_dot_product_attention

from _timing import median_times  # bench/ is on sys.path when run as python bench/x.py


def fwd_bwd(forward, inputs):
    def step():
        for x in inputs:
            x.grad = None
        forward(*inputs).sum().backward()

    return step


def math_sdpa(q, k, v):
    with sdpa_kernel(SDPBackend.MATH):  # the unfused reference: scores, softmax, weights @ v
        return F.scaled_dot_product_attention(q, k, v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, forward+backward, median of {args.repeats}")
    print(f"{'what':<34}{'size':<30}{'course_lib ms':>14}{'torch ms':>10}{'ratio':>7}")
    for B, T, C, H in [(8, 128, 256, 8), (8, 512, 256, 8), (4, 64, 512, 8)]:
        size = f"B={B} T={T} C={C} H={H}"
        x = torch.randn(B, T, C, requires_grad=True)
        ours = MultiHeadAttention(C, H)
        ref = torch.nn.MultiheadAttention(C, H, batch_first=True)
        cases = [
            ("MHA (weights kept)", lambda x: ours(x, x, x).out, lambda x: ref(x, x, x, need_weights=True, average_attn_weights=False)[0]),
            ("MHA need_weights=False", lambda x: ours(x, x, x, need_weights=False).out, lambda x: ref(x, x, x, need_weights=False)[0]),
        ]
        q, k, v = (torch.randn(B, H, T, C // H, requires_grad=True) for _ in range(3))
        for name, f_ours, f_ref in cases:
            t_ours, t_ref = median_times([fwd_bwd(f_ours, [x]), fwd_bwd(f_ref, [x])], args.repeats)
            print(f"{name:<34}{size:<30}{t_ours * 1e3:>14.2f}{t_ref * 1e3:>10.2f}{t_ours / t_ref:>7.2f}")
        t_ours, t_fused, t_math = median_times(
            [
                fwd_bwd(lambda q, k, v: scaled_dot_product_attention(q, k, v).out, [q, k, v]),
                fwd_bwd(F.scaled_dot_product_attention, [q, k, v]),
                fwd_bwd(math_sdpa, [q, k, v]),
            ],
            args.repeats,
        )
        for name, t_ref in (("sdpa vs torch math backend", t_math), ("sdpa vs torch fused kernel", t_fused)):
            print(f"{name:<34}{size:<30}{t_ours * 1e3:>14.2f}{t_ref * 1e3:>10.2f}{t_ours / t_ref:>7.2f}")


if __name__ == "__main__":
    main()
