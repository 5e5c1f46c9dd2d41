"""One intra-op thread for every computation the engine does, so a config gives the same figures on any machine.

Why: torch's CPU kernels split reductions (a GEMM's inner dimension, a sum over the batch, a bias gradient) into as
many chunks as there are intra-op threads, and floating-point addition is not associative — the same lottery config
gave a winning ticket 91.9 % against 81.1 % for the random re-initialisation on 2 threads and 92.2 % against 72.8 % on
1 (issue 26). A fixed chunk count makes the sums, and so every figure, independent of the core count. One thread is
the only count that is fixed *and* cheap on every machine: on the shipped models a second thread gains little or
nothing (the batches are small; benchmarks/bench_threads.py measures it), a fixed count above the machine's cores
would oversubscribe a small one, and a workshop server runs one process per core anyway.

torch's thread count is process-wide, so it is set once, when the engine is imported (any figure the engine computes
passes through an import of it), not around each call: switching it per call would race between the sessions that a
Streamlit process serves on threads of its own. What "the same numbers" covers is stated in the README: the same CPU
architecture and torch version (another instruction set may pick other kernels); CUDA runs differ within rounding.
"""

import torch

#: The intra-op thread count every figure is computed with (see the module docstring for why it is one).
INTRA_OP_THREADS = 1


def pin_threads() -> None:
    """Set torch's intra-op thread count to INTRA_OP_THREADS (idempotent; cheap when already set)."""
    if torch.get_num_threads() != INTRA_OP_THREADS:
        torch.set_num_threads(INTRA_OP_THREADS)
