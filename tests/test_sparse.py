"""Sparse formats: bit-identical round trips for every rank and sparsity, and byte counts that match what is written."""
import io

import pytest
import torch

from explorer.engine import sparse


def pruned_tensor(shape, sparsity, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    k = round(sparsity * w.numel())
    if k:
        w.view(-1)[torch.randperm(w.numel(), generator=g)[:k]] = 0.0
    return w


@pytest.mark.parametrize("fmt", sparse.FORMATS)
@pytest.mark.parametrize("shape", [(37,), (30, 20), (6, 4, 3, 3)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 1.0])
def test_round_trip_is_bit_identical(fmt, shape, sparsity):
    w = pruned_tensor(shape, sparsity)
    w.view(-1)[0] = -0.0  # the sign of a zero survives too
    enc = sparse.encode(w, fmt)
    back = sparse.decode(enc)
    assert back.shape == w.shape and back.dtype == w.dtype
    assert torch.equal(back.view(torch.int32), w.view(torch.int32))  # bits, not just values
    buf = io.BytesIO()
    sparse.save(enc, buf)
    assert len(buf.getvalue()) == sparse.file_bytes(enc)  # the byte count is the file actually written
    buf.seek(0)
    assert torch.equal(sparse.decode(sparse.load(buf)).view(torch.int32), w.view(torch.int32))


def test_csr_is_a_real_torch_sparse_tensor_and_coo_matches_to_sparse():
    w = pruned_tensor((30, 20), 0.8)
    enc = sparse.encode(w, "csr")
    ref = w.to_sparse_csr()
    assert torch.equal(enc["crow_indices"], ref.crow_indices()) and torch.equal(enc["col_indices"], ref.col_indices())
    coo = sparse.encode(w, "coo")
    ref = w.to_sparse().coalesce()
    assert torch.equal(coo["indices"], ref.indices()) and torch.equal(coo["values"], ref.values())


def test_memory_bytes_are_the_tensors_and_break_even_agrees():
    shape = (100, 300)
    n = 30000
    for s in (0.2, 0.5, 0.8, 0.9, 0.97):
        w = pruned_tensor(shape, s)
        nnz = n - round(s * n)
        mem = {f: sparse.memory_bytes(sparse.encode(w, f)) for f in sparse.FORMATS}
        assert mem["dense"] == 4 * n
        assert mem["coo"] == nnz * (2 * 8 + 4)
        assert mem["csr"] == 101 * 8 + nnz * (8 + 4)
        assert mem["bitmask"] == n // 8 + nnz * 4
        for f in ("coo", "csr", "bitmask"):
            assert (mem[f] < mem["dense"]) == (s > sparse.break_even_sparsity(shape, f)), (f, s)
    assert sparse.break_even_sparsity(shape, "bitmask") == pytest.approx(1 / 32)
    assert sparse.break_even_sparsity(shape, "coo") == pytest.approx(1 - 4 / 20)


def test_bitmask_of_a_90_percent_sparse_layer_is_under_0_14_of_dense():
    w = pruned_tensor((1024, 1024), 0.9)
    s = sparse.sizes(w)
    assert s["bitmask"]["memory"] / s["dense"]["memory"] <= 0.14
    assert s["bitmask"]["file"] / s["dense"]["file"] <= 0.14
