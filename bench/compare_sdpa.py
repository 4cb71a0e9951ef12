#!/usr/bin/env python3
"""MonarchAttention on the GPU (this project, through the C API) against PyTorch SDPA.

In one process and on the same tensors, times
  * monarch: this project's MonarchAttention, libmonarch_cuda_c.so through ctypes (cuda/c_api.cpp),
  * flash:   torch SDPA restricted to SDPBackend.FLASH_ATTENTION (FlashAttention-2),
  * cudnn:   torch SDPA restricted to SDPBackend.CUDNN_ATTENTION,
  * naive:   softmax(q k^T * scale) v with the scores materialised (skipped when they do not fit),
after checking each against float64 references: MonarchAttention against a PyTorch transcription of
the spec (section 4 of shared/monarch-attention-spec.md), the baselines against exact softmax
attention.

Usage (GPU machine: PyTorch + numpy; no matplotlib needed):
    cmake -S . -B build -DMONARCH_CUDA=ON && cmake --build build -j --target monarch_cuda_c
    python3 bench/compare_sdpa.py --lib build/cuda/libmonarch_cuda_c.so --out bench/results
    python3 bench/compare_sdpa.py --self-test        # CPU only: checks the float64 reference

Writes <out>/<date>-<gpu>-compare-sdpa.md (tables, floors, targets) and .csv (one row per
measurement: dtype,T,E,N,method,median_us,min_us,rel_err,status), rewritten after every row so that
a run cut short still leaves what it measured. bench/plot_compare.py draws the CSV.
"""

import argparse
import csv
import ctypes
import datetime
import math
import os
import re
import sys
import time

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------
# Problem and method constants

DEVICE = "cuda"  # one name for every tensor this script puts on the GPU
HEADS = 12  # BERT-base / ViT-B: the shapes the targets were set for
HEAD_DIM = 64  # d = d_v
DEFAULT_CONFIGS = "4096x256,1x1024,1x4096,8x4096,1x16384,1x65536"  # E x N
DEFAULT_LEVEL = 7  # the fastest level: level 6's whole head per CTA (intermediates in place) where a head fits, else level 3's steps on wgmma (bench/NOTES.md step 17); fp16/bf16 only
TOLERANCE = {"fp16": 1e-2, "bf16": 1e-2, "fp32": 1e-5}  # relative Frobenius error vs float64
TORCH_DTYPE = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
C_DTYPE = {"fp32": 0, "fp16": 1, "bf16": 2}  # MONARCH_CUDA_FP32/_FP16/_BF16 of c_api.h
BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}
TINY = 1e-30  # spec section 4: alpha_R / max(c_R, tiny); only matters when c_R = 0

# Correctness checks cost float64 work that grows with N: these bound it.
ALL_HEADS_CHECK_MAX_N = 4096  # above this only head (0, 0) is compared
EXACT_CHECK_MAX_N = 16384  # baselines are compared with exact attention up to this N
EXACT_ROW_CHUNK = 2048  # float64 score rows per chunk in exact attention (bounds its memory)

# ----------------------------------------------------------------------------------------------
# Timing and hardware constants

FLUSH_BYTES = 512 << 20  # written before every timed call; > 8x the 50-60 MB L2 of H100/H200
WARMUP_CALLS = 3
# Timed calls are enqueued behind a sleeping kernel, so the GPU runs them back to back and the
# events measure device time, not Python or ctypes launch latency (the same for every method).
BACKLOG_CYCLES_PER_REP = 1_000_000  # ~0.5 ms of GPU clock per timed call, more than any host gap
PEAK_TENSOR_FLOPS = 989e12  # dense fp16/bf16 tensor-core peak of H100 SXM; H200 has the same
DEFAULT_PEAK_GBS = {"H200": 4800.0, "H100": 3350.0}  # by device name, when the clocks are unknown
PLAUSIBLE_GBS = (300.0, 20000.0)  # a bandwidth from the clocks outside this range is a unit error
NAIVE_MEMORY_FRACTION = 0.8  # naive attention runs only if its scores fit in this much free memory

# Issue targets for fp16, T = 1: (E, N) -> (min speed-up vs the faster SDPA backend,
# max time / floor, which floor). The floor is the memory floor, or "max" = max(memory, compute).
TARGETS = {
    (4096, 256): (1.4, 1.2, "memory"),
    (1, 4096): (5.0, None, None),
    (8, 4096): (13.0, 1.5, "memory"),
    (1, 16384): (35.0, 2.0, "memory"),
    (1, 65536): (47.0, 2.0, "max"),
}
TARGET_DTYPE = "fp16"


# ----------------------------------------------------------------------------------------------
# Reference semantics in float64 (spec sections 1-4), vectorised over heads and blocks


def default_block(n):
    """ceil(sqrt(n)), computed exactly in integers."""
    return math.isqrt(n - 1) + 1


def monarch_reference(q, k, v, block, steps, scale, record=None):
    """MonarchAttention of (B, N, d) queries/keys and (B, N, dv) values, post-padding, no mask.

    Padded index p = l*b + j is block l, position j; tensors are viewed as (B, m, b, .). The
    factors are kept explicitly (fine for a reference): R[., k, j, i] = R_k[j, i] and
    Lt[., l, j, k] = L_j[k, l]. If record is a list, (R, Lt) is appended after every half-step
    (first entry: the first R with L = I) so that the objective can be checked for monotonicity.
    """
    B, N, d = q.shape
    b = block
    m = -(-N // b)
    n_pad = m * b - N

    def blocks(x):  # zero rows for the pads at the end, then (B, m, b, width)
        return F.pad(x, (0, 0, 0, n_pad)).reshape(B, m, b, x.shape[-1])

    Q, K, V = blocks(q), blocks(k), blocks(v)
    valid = (torch.arange(m * b, device=q.device) < N).reshape(m, b)  # valid[l, j]: a token
    key_invalid = ~valid[None, :, None, :]  # broadcasts over (B, k, j, i)
    query_weight = valid.to(q.dtype)[None, :, :, None]  # broadcasts over (B, l, j, k)

    # L = I: the first R-update sees alpha_R = q (0 at pads) and c_R = 1, i.e. local softmax.
    alpha_R = Q
    c_R = torch.ones(B, m, b, dtype=q.dtype, device=q.device)
    Lt = torch.eye(m, dtype=q.dtype, device=q.device)[:, None, :].expand(B, m, b, m)
    for t in range(steps):
        # R-update (eq. 12): each row is a softmax over the valid keys of its block, steered by the
        # L-weighted mean query alpha_R / c_R.
        mean_q = alpha_R / c_R.clamp_min(TINY)[..., None]
        z = scale * torch.einsum("bkjd,bkid->bkji", mean_q, K)
        log_R = torch.log_softmax(z.masked_fill(key_invalid, -math.inf), dim=-1)
        R = log_R.exp()  # exactly 0 at invalid keys
        alpha_L = torch.einsum("bkji,bkid->bkjd", R, K)
        c_L = (R * log_R.masked_fill(key_invalid, 0.0)).sum(-1)  # sum R log R, 0 log 0 = 0
        if record is not None:
            record.append((R, Lt))
        # L-update (eq. 13): query (l, j) chooses among the key blocks k seen at position j.
        s = scale * torch.einsum("bljd,bkjd->bljk", Q, alpha_L) - c_L.transpose(1, 2)[:, None]
        Lt = torch.softmax(s, dim=-1)
        if record is not None:
            record.append((R, Lt))
        if t + 1 < steps:
            # Statistics for the next R-update (eq. 11); pad queries carry no weight.
            w = Lt * query_weight
            alpha_R = torch.einsum("bljk,bljd->bkjd", w, Q)
            c_R = w.sum(dim=1).transpose(1, 2)
    Y = torch.einsum("bkji,bkid->bkjd", R, V)
    o = torch.einsum("bljk,bkjd->bljd", Lt, Y)
    return o.reshape(B, m * b, -1)[:, :N]


def exact_attention(q, k, v, scale):
    """softmax(scale q k^T) v for (B, N, .) tensors, in row chunks to bound the score memory."""
    out = []
    for r in range(0, q.shape[1], EXACT_ROW_CHUNK):
        s = scale * q[:, r : r + EXACT_ROW_CHUNK] @ k.transpose(1, 2)
        out.append(torch.softmax(s, dim=-1) @ v)
    return torch.cat(out, dim=1)


def rel_err(a, b):
    """||a - b|| / ||b|| (Frobenius), in float64."""
    a, b = a.double(), b.double()
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)).item()


# ----------------------------------------------------------------------------------------------
# Self-test of the reference (CPU, float64; no GPU, no library)


def loop_reference(q, k, v, b, steps, scale):
    """The spec's formulas as plain loops over one head's Python floats: an independent check of
    the index bookkeeping of monarch_reference (slow; tiny problems only)."""
    N, d, dv = len(q), len(q[0]), len(v[0])
    m = -(-N // b)
    tok = lambda l, j: l * b + j if l * b + j < N else None  # token at (l, j), None at a pad
    dot = lambda x, y: sum(xi * yi for xi, yi in zip(x, y))
    zero = [0.0] * d
    aR = [[list(q[tok(kb, j)]) if tok(kb, j) is not None else list(zero) for j in range(b)] for kb in range(m)]
    cR = [[1.0] * b for _ in range(m)]
    for t in range(steps):
        R = [[None] * b for _ in range(m)]
        aL = [[None] * b for _ in range(m)]
        cL = [[None] * b for _ in range(m)]
        for kb in range(m):
            keys = [i for i in range(b) if tok(kb, i) is not None]
            for j in range(b):
                mq = [x / max(cR[kb][j], TINY) for x in aR[kb][j]]
                z = {i: scale * dot(mq, k[tok(kb, i)]) for i in keys}
                zmax = max(z.values())
                lse = zmax + math.log(sum(math.exp(zi - zmax) for zi in z.values()))
                R[kb][j] = {i: math.exp(z[i] - lse) for i in keys}
                aL[kb][j] = [sum(R[kb][j][i] * k[tok(kb, i)][c] for i in keys) for c in range(d)]
                cL[kb][j] = sum(R[kb][j][i] * (z[i] - lse) for i in keys)
        L = [[None] * m for _ in range(b)]  # L[j][l] = column l of L_j, a list over k
        for j in range(b):
            for l in range(m):
                qv = q[tok(l, j)] if tok(l, j) is not None else zero
                s = [scale * dot(qv, aL[kb][j]) - cL[kb][j] for kb in range(m)]
                smax = max(s)
                e = [math.exp(x - smax) for x in s]
                L[j][l] = [x / sum(e) for x in e]
        if t + 1 < steps:
            for kb in range(m):
                for j in range(b):
                    ls = [l for l in range(m) if tok(l, j) is not None]
                    aR[kb][j] = [sum(L[j][l][kb] * q[tok(l, j)][c] for l in ls) for c in range(d)]
                    cR[kb][j] = sum(L[j][l][kb] for l in ls)
    out = []
    for n in range(N):
        l, j = divmod(n, b)
        Y = [[sum(R[kb][j][i] * v[tok(kb, i)][c] for i in R[kb][j]) for c in range(dv)] for kb in range(m)]
        out.append([sum(L[j][l][kb] * Y[kb][c] for kb in range(m)) for c in range(dv)])  # Y[kb] at this j
    return out


def objective(q, k, R, Lt, scale):
    """F(A) of spec (F) for one head: sum over token rows of <A_r, S_r> + H(A_r), A built densely
    from the factors by (M); also returns the row sums of A (each must be 1)."""
    N = q.shape[0]
    m, b = R.shape[0], R.shape[1]
    A = torch.einsum("ljk,kji->ljki", Lt, R).reshape(m * b, m * b)[:N, :N]  # pad keys have R = 0
    S = scale * q @ k.T
    return (A * S).sum() - torch.special.xlogy(A, A).sum(), A.sum(dim=1)


def self_test():
    """Checks monarch_reference against limits the spec proves, a loop transcription, and the
    monotonicity of the objective. Returns the number of failures."""
    torch.manual_seed(0)
    exact_tol, loop_tol, mono_slack = 1e-10, 1e-12, 1e-10
    failures = 0

    def check(name, err, tol):
        nonlocal failures
        ok = err <= tol
        failures += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {err:.2e} (tolerance {tol:.0e})")

    B, d, dv = 3, 5, 4  # d != dv on purpose
    for N in (1, 7, 16, 30):
        q, k, v = (torch.randn(B, N, w, dtype=torch.float64) for w in (d, d, dv))
        scale = 1.0 / math.sqrt(d)
        exact = exact_attention(q, k, v, scale)
        for T in (1, 2, 3):
            check(f"N={N} b=N T={T} vs exact", rel_err(monarch_reference(q, k, v, N, T, scale), exact), exact_tol)
            check(f"N={N} b=1 T={T} vs exact", rel_err(monarch_reference(q, k, v, 1, T, scale), exact), exact_tol)
        # The first R-update (L = I) is block-diagonal local softmax attention (spec section 4). The
        # T = 1 output is not: its L-update already mixes blocks. So compare the Monarch matrix of
        # the first half-step, (R^(1), L = I), applied to V.
        for b in range(2, N):
            if N % b == 0:
                local = exact_attention(*(x.reshape(B * N // b, b, -1) for x in (q, k, v)), scale)
                record = []
                monarch_reference(q, k, v, b, 1, scale, record)
                R, Lt = record[0]
                got = torch.einsum("eljk,ekji,ekic->eljc", Lt, R, v.reshape(B, N // b, b, dv))
                check(f"N={N} b={b} first R-update (L = I) vs block-local", rel_err(got.reshape(B, N, dv),
                      local.reshape(B, N, dv)), exact_tol)

    # Ragged (N' > N, pads in the last block), T = 3: vectorised against the loops.
    for N, b in ((10, 3), (11, 4), (9, 3)):
        q, k, v = (torch.randn(1, N, w, dtype=torch.float64) for w in (d, d, dv))
        scale = 0.7
        want = torch.tensor(loop_reference(q[0].tolist(), k[0].tolist(), v[0].tolist(), b, 3, scale),
                            dtype=torch.float64)
        check(f"N={N} b={b} T=3 vs loop transcription", rel_err(monarch_reference(q, k, v, b, 3, scale)[0], want),
              loop_tol)

    # Each half-step maximises F exactly over its factor, so F never decreases, A stays
    # row-stochastic, and F stays below F* = sum_r logsumexp(S_r) (spec section 3).
    N, b, T = 23, 5, 4
    q, k, v = (torch.randn(1, N, w, dtype=torch.float64) for w in (d, d, dv))
    scale = 1.0 / math.sqrt(d)
    record = []
    monarch_reference(q, k, v, b, T, scale, record)
    values, worst_sum = [], 0.0
    for R, Lt in record:
        f, row_sums = objective(q[0], k[0], R[0], Lt[0], scale)
        values.append(f.item())
        worst_sum = max(worst_sum, (row_sums - 1).abs().max().item())
    f_star = torch.logsumexp(scale * q[0] @ k[0].T, dim=1).sum().item()
    drops = max(0.0, *(values[i] - values[i + 1] for i in range(len(values) - 1)))
    check(f"N={N} b={b} T={T}: rows of A sum to 1", worst_sum, 1e-12)
    check(f"N={N} b={b} T={T}: largest decrease of F over {len(values)} half-steps", drops, mono_slack)
    check(f"N={N} b={b} T={T}: F <= F* (excess)", max(0.0, values[-1] - f_star), mono_slack)
    print(f"  F per half-step: {', '.join(f'{x:.6f}' for x in values)}; F* = {f_star:.6f}")
    return failures


# ----------------------------------------------------------------------------------------------
# Cost model (docs/derivation.md section 5)


def monarch_flops(N, b, d, dv, T):
    """docs/derivation.md eq. (15), one head: a multiply-add is 2 FLOPs, an exp or log 1; pads
    counted. Round 1's statistics are free (L = I), hence T - 1."""
    m = -(-N // b)
    Np = m * b
    return T * Np * ((4 * d + 2) * b + (2 * d + 1) * m) + 2 * (T - 1) * Np * m * (d + 1) + 2 * Np * (b + m) * dv


def memory_floor_bytes(E, N, dtype):
    """Read q, k, v once and write o once (docs/derivation.md section 5)."""
    return E * HEADS * N * (2 * HEAD_DIM + 2 * HEAD_DIM) * BYTES[dtype]


# ----------------------------------------------------------------------------------------------
# The library and timing


class MonarchLib:
    """ctypes binding of cuda/include/monarch_cuda/c_api.h."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(os.path.abspath(path))
        fn = self.lib.monarch_cuda_attention
        fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 8 + [ctypes.c_float, ctypes.c_int, ctypes.c_int]
        fn.restype = ctypes.c_int
        self.lib.monarch_cuda_last_error.argtypes = []
        self.lib.monarch_cuda_last_error.restype = ctypes.c_char_p
        self.lib.monarch_cuda_clear_cache.argtypes = []
        self.lib.monarch_cuda_clear_cache.restype = None

    def attention(self, q, k, v, o, block, steps, scale, dtype, level):
        E, H, N, d = q.shape
        rc = self.lib.monarch_cuda_attention(q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), E, H, N, d,
                                             v.shape[-1], block, steps, 0, scale, C_DTYPE[dtype], level)
        if rc != 0:
            raise RuntimeError(f"monarch_cuda_attention returned {rc}: "
                               f"{self.lib.monarch_cuda_last_error().decode(errors='replace')}")

    def clear_cache(self):
        self.lib.monarch_cuda_clear_cache()


def time_gpu(fn, reps, flush):
    """Median and min device time (µs) of fn over reps calls, each after an L2 flush."""
    for _ in range(WARMUP_CALLS):
        flush.zero_()
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    sleep = getattr(torch.cuda, "_sleep", None)  # private but long-standing; without it host gaps may show
    if sleep is not None:
        sleep(BACKLOG_CYCLES_PER_REP * reps)
    for i in range(reps):
        flush.zero_()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends))
    return times[len(times) // 2] if reps % 2 else 0.5 * (times[reps // 2 - 1] + times[reps // 2]), times[0]


def naive_attention(q, k, v, scale):
    s = torch.matmul(q * scale, k.transpose(-2, -1))
    return torch.matmul(torch.softmax(s, dim=-1), v)


def naive_bytes_needed(E, N, dtype):
    """The scaled copy of q, then the scores and their softmax at the same time."""
    return (E * HEADS * N * HEAD_DIM + 2 * E * HEADS * N * N) * BYTES[dtype]


def peak_bandwidth(props, override):
    """(GB/s, where it came from): the flag, the memory clock and bus width, or the device name."""
    if override:
        return override, "--peak-gbs"
    clock_khz, bus_bits = getattr(props, "memory_clock_rate", 0), getattr(props, "memory_bus_width", 0)
    if clock_khz and bus_bits:
        gbs = 2.0 * clock_khz * 1e3 * bus_bits / 8 / 1e9
        # Some builds report the clock as 0 or in other units (CUDA 13 dropped the struct field);
        # only a plausible HBM figure is trusted over the name.
        if PLAUSIBLE_GBS[0] <= gbs <= PLAUSIBLE_GBS[1]:
            return gbs, "memory clock x bus width (DDR)"
    for key, gbs in DEFAULT_PEAK_GBS.items():
        if key in props.name:
            return gbs, f"default for {key}"
    sys.exit(f"cannot tell the peak bandwidth of {props.name}: pass --peak-gbs")


def gpu_slug(name):
    """'NVIDIA H200' -> 'h200'; otherwise the whole name in lower case with dashes."""
    model = re.search(r"\b([A-Z]{1,2}\d{2,4}[A-Za-z]?)\b", name)
    if model:
        return model.group(1).lower()
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# ----------------------------------------------------------------------------------------------
# One comparison row


class Result:
    def __init__(self, method, median=None, minimum=None, err=None, status="ok"):
        self.method, self.median, self.minimum, self.err, self.status = method, median, minimum, err, status


def make_inputs(E, N, dtype, seed):
    """The same tensors for every method and every T at this (E, N, dtype)."""
    g = torch.Generator(device=DEVICE).manual_seed(seed * 1_000_003 + E * 65_537 + N)
    shape = (E, HEADS, N, HEAD_DIM)
    return [torch.randn(shape, generator=g, device=DEVICE, dtype=torch.float32).to(TORCH_DTYPE[dtype])
            for _ in range(3)]


def check_monarch(q, k, v, o, N, b, T, scale):
    """Relative error of the device output against the float64 reference, over every head of
    batch element 0 for N <= ALL_HEADS_CHECK_MAX_N, else over head (0, 0) alone."""
    heads = slice(None) if N <= ALL_HEADS_CHECK_MAX_N else slice(0, 1)
    x = [t[0, heads].double() for t in (q, k, v)]
    want = monarch_reference(*x, b, T, scale)
    return rel_err(o[0, heads], want)


def run_baselines(q, k, v, N, dtype, scale, reps, flush):
    """flash, cudnn and naive: correctness on head (0, 0) for N <= EXACT_CHECK_MAX_N, then times."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    exact = None
    if N <= EXACT_CHECK_MAX_N:
        exact = exact_attention(q[0, :1].double(), k[0, :1].double(), v[0, :1].double(), scale)[0]
    results = []
    E = q.shape[0]
    for method, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        try:
            with sdpa_kernel(backend):
                fn = lambda: F.scaled_dot_product_attention(q, k, v, scale=scale)
                out = fn()
                torch.cuda.synchronize()
                err = rel_err(out[0, 0], exact) if exact is not None else None
                del out
                if err is not None and not err < TOLERANCE[dtype]:
                    results.append(Result(method, err=err, status=f"FAILED: rel err {err:.2e}"))
                    continue
                med, mn = time_gpu(fn, reps, flush)
            results.append(Result(method, med, mn, err))
        except RuntimeError as e:  # backend unavailable for this shape/dtype/device
            results.append(Result(method, status="error: " + one_line(e)))
    need = naive_bytes_needed(E, N, dtype)
    free, _ = torch.cuda.mem_get_info()
    if need > NAIVE_MEMORY_FRACTION * free:
        results.append(Result("naive", status=f"skipped: needs {need / 1e9:.3g} GB"))
    else:
        try:
            fn = lambda: naive_attention(q, k, v, scale)
            out = fn()
            torch.cuda.synchronize()
            err = rel_err(out[0, 0], exact) if exact is not None else None
            del out
            if err is not None and not err < TOLERANCE[dtype]:
                results.append(Result("naive", err=err, status=f"FAILED: rel err {err:.2e}"))
            else:
                med, mn = time_gpu(fn, reps, flush)
                results.append(Result("naive", med, mn, err))
        except torch.cuda.OutOfMemoryError:
            results.append(Result("naive", status=f"skipped: needs {need / 1e9:.3g} GB (out of memory)"))
        except RuntimeError as e:
            results.append(Result("naive", status="error: " + one_line(e)))
    torch.cuda.empty_cache()
    return results


def run_monarch(lib, q, k, v, N, b, T, dtype, scale, level, reps, flush):
    o = torch.empty_like(v)
    fn = lambda: lib.attention(q, k, v, o, b, T, scale, dtype, level)
    try:
        o.fill_(math.nan)  # nothing stale can pass the check
        fn()
        torch.cuda.synchronize()
        err = check_monarch(q, k, v, o, N, b, T, scale)
        if not err < TOLERANCE[dtype]:  # NaN fails too
            return Result("monarch", err=err, status=f"FAILED: rel err {err:.2e} >= {TOLERANCE[dtype]:.0e}")
        med, mn = time_gpu(fn, reps, flush)
        return Result("monarch", med, mn, err)
    except RuntimeError as e:
        return Result("monarch", status="error: " + one_line(e))
    finally:
        lib.clear_cache()  # the next row's shape needs the memory more than this one's buffers


def one_line(e):
    return " ".join(str(e).split())[:300]


# ----------------------------------------------------------------------------------------------
# Reporting


def fmt_us(r):
    return f"{r.median:.1f}" if r and r.median is not None else (r.status.split(":")[0] if r else "-")


def fmt_err(r):
    return f"{r.err:.1e}" if r and r.err is not None else "-"


def target_for(dtype, T, E, N):
    """(speed-up target, floor factor, floor kind, FLOPs ratio) for fp16 rows with a target.
    T > 1 divides the speed-up and multiplies the floor factor by FLOPs(T)/FLOPs(1)."""
    if dtype != TARGET_DTYPE or (E, N) not in TARGETS:
        return None
    speedup, factor, kind = TARGETS[(E, N)]
    b = default_block(N)
    ratio = monarch_flops(N, b, HEAD_DIM, HEAD_DIM, T) / monarch_flops(N, b, HEAD_DIM, HEAD_DIM, 1)
    return speedup / ratio, (factor * ratio if factor else None), kind, ratio


def row_summary(row, peak_gbs):
    """Derived numbers of one (dtype, T, E, N) row: speed-up, floor ratios, target verdicts."""
    dtype, T, E, N, res = row["dtype"], row["T"], row["E"], row["N"], row["results"]
    mon = res.get("monarch")
    sdpa = [res[m].median for m in ("flash", "cudnn") if m in res and res[m].median is not None]
    mem_floor_us = memory_floor_bytes(E, N, dtype) / (peak_gbs * 1e9) * 1e6
    flops = E * HEADS * monarch_flops(N, row["b"], HEAD_DIM, HEAD_DIM, T)
    compute_floor_us = flops / PEAK_TENSOR_FLOPS * 1e6
    s = {"mem_floor_us": mem_floor_us, "compute_floor_us": compute_floor_us, "speedup": None,
         "x_mem": None, "x_max": None, "target": None, "met": None}
    if mon and mon.median is not None:
        s["x_mem"] = mon.median / mem_floor_us
        s["x_max"] = mon.median / max(mem_floor_us, compute_floor_us)
        if sdpa:
            s["speedup"] = min(sdpa) / mon.median
    tgt = target_for(dtype, T, E, N)
    if tgt:
        sp_t, factor_t, kind, _ = tgt
        s["target"] = f">= {sp_t:.1f}x" + (f", <= {factor_t:.2f}x {kind} floor" if factor_t else "")
        if s["speedup"] is None:
            s["met"] = "no data"
        else:
            ok = s["speedup"] >= sp_t
            if factor_t:
                ok = ok and (s["x_mem"] if kind == "memory" else s["x_max"]) <= factor_t
            s["met"] = "yes" if ok else "NO"
    return s


def write_outputs(rows, meta, out_dir):
    stem = os.path.join(out_dir, f"{meta['date']}-{meta['slug']}-compare-sdpa")
    with open(stem + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dtype", "T", "E", "N", "method", "median_us", "min_us", "rel_err", "status"])
        for row in rows:
            for m in ("monarch", "flash", "cudnn", "naive"):
                r = row["results"].get(m)
                if r is None:
                    continue
                w.writerow([row["dtype"], row["T"], row["E"], row["N"], m,
                            "" if r.median is None else f"{r.median:.3f}",
                            "" if r.minimum is None else f"{r.minimum:.3f}",
                            "" if r.err is None else f"{r.err:.3e}", r.status])
    lines = [
        "# MonarchAttention (this project, CUDA level {level}) vs PyTorch SDPA".format(**meta),
        "",
        f"- date: {meta['date']}",
        f"- GPU: {meta['gpu']}",
        f"- torch {meta['torch']} (CUDA {meta['cuda']}), cuDNN {meta['cudnn']}",
        f"- peak memory bandwidth used for the memory floor: {meta['peak_gbs']:.0f} GB/s ({meta['peak_src']})",
        f"- compute floor: eq. (15) FLOPs of docs/derivation.md / {PEAK_TENSOR_FLOPS / 1e12:.0f} TFLOP/s "
        "(dense fp16 tensor-core peak of H100 SXM, same on H200)",
        f"- H = {HEADS}, d = d_v = {HEAD_DIM}, b = ceil(sqrt(N)), post-padding, no mask, scale 1/sqrt(d)",
        f"- times: median (and min in the CSV) of {meta['reps']} calls, CUDA events around the call only, "
        f"{FLUSH_BYTES >> 20} MiB L2 flush before each, {WARMUP_CALLS} warm-up calls; calls queued behind a "
        "sleep kernel so device time is measured, not launch latency",
        "- memory floor: E H N (2d + 2d_v) bytes per element / peak bandwidth",
        f"- correctness: relative Frobenius error against float64; Monarch against the spec's reference "
        f"(all heads of batch 0 for N <= {ALL_HEADS_CHECK_MAX_N}, head (0,0) above), SDPA and naive "
        f"against exact softmax attention on head (0,0) for N <= {EXACT_CHECK_MAX_N}; must be < 1e-2",
        "",
        "| dtype | T | E x N | b | monarch µs | flash µs | cudnn µs | naive µs | speed-up vs best SDPA |"
        " monarch / mem floor | monarch / max floor | err monarch | err flash | err cudnn | err naive |"
        " target | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        res, s = row["results"], row_summary(row, meta["peak_gbs"])
        g = lambda m: res.get(m)
        num = lambda x, f: "-" if x is None else f.format(x)
        lines.append(
            f"| {row['dtype']} | {row['T']} | {row['E']}x{row['N']} | {row['b']} | {fmt_us(g('monarch'))} | "
            f"{fmt_us(g('flash'))} | {fmt_us(g('cudnn'))} | {fmt_us(g('naive'))} | {num(s['speedup'], '{:.2f}x')} | "
            f"{num(s['x_mem'], '{:.2f}')} | {num(s['x_max'], '{:.2f}')} | {fmt_err(g('monarch'))} | "
            f"{fmt_err(g('flash'))} | {fmt_err(g('cudnn'))} | {fmt_err(g('naive'))} | {s['target'] or '-'} | "
            f"{s['met'] or '-'} |")
    # Baselines do not depend on T: each is measured once per (dtype, E, N) and noted once.
    notes, seen = [], set()
    for row in rows:
        for r in row["results"].values():
            where = (row["dtype"], row["E"], row["N"], r.method) + ((row["T"],) if r.method == "monarch" else ())
            if r.status != "ok" and where not in seen:
                seen.add(where)
                t = f" T={row['T']}" if r.method == "monarch" else ""
                notes.append(f"- {row['dtype']}{t} {row['E']}x{row['N']} {r.method}: {r.status}")
    if notes:
        lines += ["", "Not timed:", ""] + notes

    lines += [
        "",
        "## Targets",
        "",
        f"Issue targets, {TARGET_DTYPE}, T = 1: speed-up over the faster of the two SDPA backends, and Monarch "
        "time within a factor of a floor. For T = 2 each speed-up target is divided by "
        "FLOPs(T=2)/FLOPs(T=1) (eq. (15) at that N, b) and each floor factor multiplied by it: the second "
        "round adds work that the targets, set for one round, did not budget.",
        "",
        "| E x N | T=1 speed-up | T=1 floor | FLOPs(T=2)/FLOPs(T=1) | T=2 speed-up | T=2 floor | mem floor µs | "
        "compute floor µs (T=1) | met T=1 | met T=2 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = {(row["T"], row["E"], row["N"]): row_summary(row, meta["peak_gbs"])
                for row in rows if row["dtype"] == TARGET_DTYPE}
    for (E, N), (sp, factor, kind) in TARGETS.items():
        _, f2, _, ratio = target_for(TARGET_DTYPE, 2, E, N)
        floor1 = f"<= {factor}x {kind}" if factor else "-"
        floor2 = f"<= {f2:.2f}x {kind}" if factor else "-"
        mem_us = memory_floor_bytes(E, N, TARGET_DTYPE) / (meta["peak_gbs"] * 1e9) * 1e6
        comp_us = E * HEADS * monarch_flops(N, default_block(N), HEAD_DIM, HEAD_DIM, 1) / PEAK_TENSOR_FLOPS * 1e6
        met = lambda T: (verdicts.get((T, E, N)) or {}).get("met") or "not run"
        lines.append(f"| {E}x{N} | >= {sp}x | {floor1} | {ratio:.3f} | >= {sp / ratio:.2f}x | {floor2} | "
                     f"{mem_us:.1f} | {comp_us:.1f} | {met(1)} | {met(2)} |")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    return stem, lines


# ----------------------------------------------------------------------------------------------
# Main


def parse_configs(text):
    configs = []
    for item in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", item)
        if not m:
            sys.exit(f"--configs: '{item}' is not ExN (e.g. 1x4096)")
        configs.append((int(m.group(1)), int(m.group(2))))
    return configs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", help="path to libmonarch_cuda_c.so (required unless --self-test)")
    ap.add_argument("--out", default="bench/results", help="directory for the .md and .csv")
    ap.add_argument("--level", type=int, default=DEFAULT_LEVEL, help="CUDA level (default 7, the fastest; 3 to 8 run fp16/bf16 only)")
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help="comma-separated ExN, run in this order")
    ap.add_argument("--steps", default="1,2", help="comma-separated T values")
    ap.add_argument("--dtypes", default="fp16,bf16", help="comma-separated of fp16, bf16, fp32")
    ap.add_argument("--reps", type=int, default=30, help="timed calls per measurement")
    ap.add_argument("--peak-gbs", type=float, default=None, help="peak memory bandwidth, GB/s")
    ap.add_argument("--max-seconds", type=float, default=480,
                    help="start no new row after this many seconds (0: no limit); the GPU session kills "
                         "commands at 600 s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--self-test", action="store_true", help="check the float64 reference on the CPU and exit")
    args = ap.parse_args()

    if args.self_test:
        print("self-test of the float64 MonarchAttention reference (CPU):")
        failures = self_test()
        print("self-test: " + ("all passed" if failures == 0 else f"{failures} FAILED"))
        return 1 if failures else 0
    if not args.lib:
        ap.error("--lib is required (or --self-test)")
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to PyTorch")
    dtypes = [x.strip() for x in args.dtypes.split(",")]
    for x in dtypes:
        if x not in TORCH_DTYPE:
            sys.exit(f"--dtypes: unknown '{x}' (fp16, bf16, fp32)")
    steps = [int(x) for x in args.steps.split(",")]
    configs = parse_configs(args.configs)

    start = time.monotonic()
    torch.cuda.init()  # PyTorch owns the primary context first; the library's cudart shares it
    lib = MonarchLib(args.lib)
    props = torch.cuda.get_device_properties(0)
    peak_gbs, peak_src = peak_bandwidth(props, args.peak_gbs)
    meta = {
        "date": datetime.date.today().isoformat(), "gpu": props.name, "slug": gpu_slug(props.name),
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "peak_gbs": peak_gbs, "peak_src": peak_src, "reps": args.reps, "level": args.level,
    }
    os.makedirs(args.out, exist_ok=True)
    print(f"{props.name}, torch {torch.__version__}, cuDNN {meta['cudnn']}, peak {peak_gbs:.0f} GB/s ({peak_src})")

    flush = torch.empty(FLUSH_BYTES // 4, dtype=torch.int32, device=DEVICE)
    scale = 1.0 / math.sqrt(HEAD_DIM)
    baselines = {}  # (dtype, E, N) -> results: SDPA and naive do not depend on T
    rows, stem = [], None
    # Most important first: the first dtype and T (default fp16, T = 1) over every shape.
    plan = [(dt, T, E, N) for dt in dtypes for T in steps for (E, N) in configs]
    for i, (dtype, T, E, N) in enumerate(plan):
        elapsed = time.monotonic() - start
        if args.max_seconds and elapsed > args.max_seconds:
            print(f"time limit: {elapsed:.0f} s > {args.max_seconds:.0f} s, {len(plan) - i} rows not run")
            break
        b = default_block(N)
        q, k, v = make_inputs(E, N, dtype, args.seed)
        results = {"monarch": run_monarch(lib, q, k, v, N, b, T, dtype, scale, args.level, args.reps, flush)}
        if (dtype, E, N) not in baselines:
            baselines[(dtype, E, N)] = run_baselines(q, k, v, N, dtype, scale, args.reps, flush)
        for r in baselines[(dtype, E, N)]:
            results[r.method] = r
        del q, k, v
        torch.cuda.empty_cache()
        rows.append({"dtype": dtype, "T": T, "E": E, "N": N, "b": b, "results": results})
        stem, lines = write_outputs(rows, meta, args.out)  # after every row: a killed run keeps its rows
        r = results
        print(f"[{time.monotonic() - start:4.0f} s] {dtype} T={T} {E}x{N} (µs): monarch {fmt_us(r['monarch'])} "
              f"(err {fmt_err(r['monarch'])}), flash {fmt_us(r.get('flash'))}, cudnn {fmt_us(r.get('cudnn'))}, "
              f"naive {fmt_us(r.get('naive'))}", flush=True)
    if stem:
        print("\n".join(lines))
        print(f"\nwrote {stem}.md and {stem}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
