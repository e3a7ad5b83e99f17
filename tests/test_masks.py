import pytest
import torch

from course_lib.masks import causal_mask, check_mask, combine_masks, padding_mask, to_torch_key_padding_mask


def test_padding_mask_shape_and_polarity():
    tokens = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0], [1, 2, 3, 4]])
    m = padding_mask(tokens, pad_id=0)
    assert m.shape == (3, 1, 1, 4) and m.dtype == torch.bool
    assert m[0, 0, 0].tolist() == [True, True, False, False]
    assert to_torch_key_padding_mask(m).tolist()[1] == [False, True, True, True]


def test_causal_mask_is_lower_triangular():
    m = causal_mask(4)
    assert m.tolist() == [[True, False, False, False], [True, True, False, False], [True, True, True, False], [True] * 4]


def test_combine_broadcasts_padding_with_causal():
    tokens = torch.tensor([[5, 6, 0], [7, 8, 9]])
    m = combine_masks(padding_mask(tokens, 0), causal_mask(3), None)
    assert m.shape == (2, 1, 3, 3)
    assert m[0, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    assert combine_masks(None) is None


@pytest.mark.parametrize(
    "make, exc, words",
    [
        (lambda: padding_mask(torch.tensor([1, 2, 0]), 0), ValueError, "(B, S)"),
        (lambda: padding_mask(torch.randn(2, 3), 0), TypeError, "integer token ids"),
        (lambda: padding_mask([[1, 2]], 0), TypeError, "torch.Tensor"),
        (lambda: causal_mask(0), ValueError, "positive int"),
        (lambda: causal_mask(2.5), ValueError, "positive int"),
        (lambda: combine_masks(torch.ones(3, 3), causal_mask(3)), TypeError, "boolean masks"),
        (lambda: combine_masks(torch.ones(2, 1, 1, 4, dtype=torch.bool), causal_mask(3)), ValueError, "do not broadcast"),
        (lambda: check_mask(torch.ones(3, 3), (1, 3, 3)), TypeError, "True = may attend"),
        (lambda: check_mask(torch.ones(4, 3, dtype=torch.bool), (2, 3, 3)), ValueError, "does not broadcast"),
        (lambda: to_torch_key_padding_mask(causal_mask(3)), ValueError, "(B, 1, 1, S)"),
    ],
)
def test_bad_masks(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    assert words in str(info.value)
